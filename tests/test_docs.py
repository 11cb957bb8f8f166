"""The documentation builds without a warning, and every relative link in it resolves.

- ``mkdocs build --strict`` (mkdocs.yml: broken links and anchors, and pages left out of
  the nav, are warnings, so they fail the build); skipped when mkdocs or its Material theme
  is not installed (``pip install -e '.[docs]'``).
- README.md and every page under docs/: each relative link points at a file of the
  repository (and, with ``#anchor``, at a heading of that page); none leaves the repository
  or points into ``shared/``, which is not part of it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (which may look like links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = prose(page.read_text(encoding="utf-8"))
    return LINK.findall(text) + HTML_LINK.findall(text)


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target))  # http:, https:, mailto:, …


def slugify(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc (MkDocs' default) makes it."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "").replace("**", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = slugify(title)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}_{n}")
    return out


def test_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/guide/cli.md", "docs/guide/python.md",
            "docs/guide/choosing.md", "docs/troubleshooting.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(page):
    problems = []
    for target in links(page):
        if is_external(target) or target.startswith("#") and not target[1:]:
            continue
        path_part, _, anchor = target.partition("#")
        path_part = path_part.split("?", 1)[0]
        if path_part.startswith("/"):
            problems.append(f"{target}: absolute path (use a relative link)")
            continue
        resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: points outside the repository")
        elif resolved.is_relative_to(ROOT / "shared"):
            problems.append(f"{target}: points into shared/, which is not part of the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{target}: no heading with the anchor #{anchor} in {resolved.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_no_page_mentions_a_path_into_shared():
    offenders = [p.relative_to(ROOT).as_posix() for p in PAGES if re.search(r"\]\([^)]*\bshared/", p.read_text(encoding="utf-8"))]
    assert not offenders, f"pages linking to shared/: {offenders}"


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", nav, re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"nav entries without a page: {sorted(listed - pages)}"


def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]'): the site build is not checked")
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    log = r.stdout + r.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert r.returncode == 0 and not warnings, log[-4000:]
    for page in ("index.html", "guide/cli/index.html", "guide/python/index.html", "guide/choosing/index.html",
                 "troubleshooting/index.html", "adaptation/index.html"):
        assert (site / page).is_file(), page
