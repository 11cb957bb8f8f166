"""What a batch will do: the inputs found in IN_DIR, where their outputs go, and the settings hash.

Inputs are video files and image sequences: a folder under IN_DIR that holds image files
is one sequence (the frames are not listed one by one and the folder is not walked
further). A sequence is written as a sequence folder named like its frames (a video
file with a video ``--ext``); a video as a video file (a sequence with ``--ext png``,
``tif``, ``dpx`` or ``exr``). The walk follows symbolic links to folders but visits each folder once (a link loop is
listed, not followed), never enters OUT_DIR or hidden folders (``.vsrpipe``, temporary
files), and sorts what it finds so that runs are repeatable.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.errors import InputError, OutputError, VsrError
from vsr_pipeline.io.sequence import IMAGE_FORMATS, list_sequence
from vsr_pipeline.io.sequence_sink import SINK_FORMATS, is_sequence_output, pattern_like

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv", ".flv",
    ".y4m", ".nut", ".ogv", ".3gp", ".mxf", ".dv",
})
WORK_DIR = ".vsrpipe"  # inside OUT_DIR: the manifest, its lock and the segment work folders


@dataclass(frozen=True)
class Item:
    """One input (a video file or an image-sequence folder) and its output (a file or a numbered pattern)."""

    key: str  # path relative to IN_DIR (POSIX separators): the manifest's key
    src: Path
    dst: Path


@dataclass(frozen=True)
class Skipped:
    """A path the batch leaves alone, and why."""

    key: str
    reason: str


def scan(in_dir: Path, out_dir: Path, *, patterns: tuple[str, ...] = (), recursive: bool = False,
         ext: str | None = None) -> tuple[list[Item], list[Skipped]]:
    """The inputs under ``in_dir`` matching ``patterns`` (default: video files, image-sequence folders) -> (items, skipped).

    Raises :class:`InputError` when ``in_dir`` is not a readable folder and
    :class:`OutputError` when ``out_dir`` is ``in_dir`` or a file.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputError(f"Input folder {str(in_dir)!r} does not exist or is not a folder.")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"Output folder {str(out_dir)!r} is a file; give a folder.")
    if out_dir.resolve() == in_dir.resolve():
        raise OutputError(f"Output folder {str(out_dir)!r} is the input folder; choose another one.")
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
    out_real = out_dir.resolve()
    files: list[tuple[str, Path]] = []
    skipped: list[Skipped] = []
    seen: set[tuple[int, int]] = set()
    stack = [in_dir]
    while stack:
        folder = stack.pop()
        rel_folder = folder.relative_to(in_dir).as_posix()
        try:
            st = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(rel_folder + "/", f"folder cannot be read ({exc.strerror})"))
            continue
        if (st.st_dev, st.st_ino) in seen:
            skipped.append(Skipped(rel_folder + "/", "symbolic link loop: folder already visited"))
            continue
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
            path = Path(entry.path)
            key = path.relative_to(in_dir).as_posix()
            if entry.name.startswith("."):
                continue  # hidden: our work folder and temporary files, editors' files
            try:
                is_dir = entry.is_dir()  # follows links
                is_file = entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                if path.resolve() == out_real:
                    skipped.append(Skipped(key + "/", "the output folder (never read as input)"))
                    continue
                kind = _folder_kind(path)
                if kind == "sequence":
                    if _matches(entry.name, key, patterns, folder=True):
                        files.append((key, path))
                    else:
                        skipped.append(Skipped(key + "/", "does not match --pattern"))
                elif recursive:
                    stack.append(path)
                elif kind == "mixed":
                    skipped.append(Skipped(key + "/", "holds images beside videos or folders, so it is not an image "
                                                      "sequence; -r reads the videos in it"))
                continue
            if not is_file:
                reason = "broken symbolic link" if entry.is_symlink() else "not a regular file"
                skipped.append(Skipped(key, reason))
                continue
            if not _matches(entry.name, key, patterns):
                skipped.append(Skipped(key, "not a video file" if not patterns else "does not match --pattern"))
                continue
            files.append((key, path))
    items: list[Item] = []
    claimed: dict[Path, str] = {}
    for key, src in sorted(files):
        dst = output_for(out_dir, key, src, ext)
        where = dst.parent if is_sequence_output(dst) else dst  # a sequence's output is its folder
        if where in claimed:
            skipped.append(Skipped(key, f"its output {str(dst)!r} is also the output of {claimed[where]!r}"))
            continue
        claimed[where] = key
        items.append(Item(key, src, dst))
    return items, sorted(skipped, key=lambda s: s.key)


def output_for(out_dir: Path, key: str, src: Path, ext: str | None) -> Path:
    """Where the input ``key`` (``src`` under IN_DIR) is written, given ``--ext`` (with its dot, or None).

    A sequence folder ``shots/a`` becomes ``OUT_DIR/shots/a/<frames named like its own>``
    (or ``OUT_DIR/shots/a.<ext>`` for a video ``ext``); a video ``a.mp4`` becomes
    ``OUT_DIR/a.<ext or mp4>`` (or ``OUT_DIR/a/%06d.<ext>`` for an image ``ext``).
    """
    image_ext = ext is not None and ext.lower() in SINK_FORMATS
    if src.is_dir():
        if ext is not None and not image_ext:
            return out_dir / f"{key}{ext}"
        try:
            first = list_sequence(src).files[0]
        except VsrError:  # refused when its job starts, with the reason
            return out_dir / key / f"%06d{ext or '.png'}"
        suffix = ext or (first.suffix if first.suffix.lower() in SINK_FORMATS else ".png")
        return out_dir / key / pattern_like(first, suffix)
    if image_ext:
        return out_dir / Path(key).with_suffix("") / f"%06d{ext}"
    return out_dir / Path(key).with_suffix(ext or src.suffix)


def _folder_kind(folder: Path) -> str:
    """``"sequence"``: ``folder`` holds (not hidden) images and nothing else a batch reads — no video, no sub-folder;
    ``"mixed"``: images beside videos or folders (a poster beside episodes: walked, not a sequence); else ``"other"``."""
    images = others = False
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                suffix = Path(e.name).suffix.lower()
                if suffix in IMAGE_FORMATS and not e.is_dir():
                    images = True
                elif suffix in VIDEO_EXTENSIONS or e.is_dir():
                    others = True
    except OSError:
        return "other"
    if images:
        return "mixed" if others else "sequence"
    return "other"


def _matches(name: str, key: str, patterns: tuple[str, ...], *, folder: bool = False) -> bool:
    if not patterns:
        return folder or Path(name).suffix.lower() in VIDEO_EXTENSIONS
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(key, p) for p in patterns)


def settings_hash(config: EnhanceConfig, ext: str) -> str:
    """A hash of every setting that changes an output (not --overwrite, not --report), and of the model's weights."""
    from vsr_pipeline import __version__
    from vsr_pipeline.models.registry import model_identity

    data = asdict(replace(config, overwrite=False, report=None))
    data["ext"] = ext.lower()
    data["version"] = __version__
    data["model_identity"] = model_identity(config.model)  # a .param's .bin too; a wheel model's version
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def work_folder(out_dir: Path, key: str) -> Path:
    """The segment work folder of input ``key`` inside OUT_DIR's work folder."""
    return Path(out_dir) / WORK_DIR / "work" / hashlib.sha1(key.encode()).hexdigest()[:16]


def refuse_links(*folders: Path) -> None:
    """Refuse a work folder (or one inside it) that is a symbolic link: the work would land wherever it points."""
    for folder in folders:
        if folder.is_symlink():
            raise OutputError(
                f"The work folder {str(folder)!r} is a symbolic link; vsrpipe will not follow it. "
                "Remove the link and run again."
            )
