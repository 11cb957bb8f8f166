"""Paths and atomic output: the one place that checks an output path and publishes a file.

Every file vsrpipe writes (videos, reports, kernels, figures, weights, checkpoints) is
written to a hidden temporary file beside its target and renamed into place only when it
is complete, so an interrupted or failed run never leaves a half-written file at the
target path. :func:`publish` refuses to replace a file it was not told it may replace.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from vsr_pipeline.errors import InputError, OutputError

__all__ = ["atomic_output", "check_paths", "publish", "temp_path_for", "write_bytes_atomic"]


def check_paths(src: Path | str, dst: Path | str, overwrite: bool) -> None:
    """Refuse an output that is the input, exists without ``overwrite``, or cannot be written.

    Raises :class:`InputError` when ``src`` does not exist and :class:`OutputError` for the
    output's problems, each with one sentence.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"Input file {str(src)!r} does not exist.")
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise OutputError(f"Output {str(dst)!r} is the input file; choose another output path.")
    if dst.is_dir():
        raise OutputError(f"Output {str(dst)!r} is a folder; give a file name such as out.mp4.")
    if dst.exists() and not overwrite:
        raise OutputError(f"Output {str(dst)!r} already exists; pass --overwrite to replace it.")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"Output folder {str(parent)!r} does not exist.")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"Output folder {str(parent)!r} is not writable.")


def temp_path_for(path: Path | str) -> Path:
    """A fresh, hidden temporary file in ``path``'s folder with the same extension (created empty)."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"Output folder {str(path.parent)!r} is not writable ({exc.strerror}).") from exc
    os.close(fd)
    return Path(name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: Path | str, target: Path | str, *, replace: bool = True) -> Path:
    """Move the finished temporary file ``tmp`` to ``target``; returns ``target``.

    The file gets the permissions the umask gives a new file (mkstemp makes 0600). With
    ``replace=False`` an existing ``target`` (a file that appeared while we were writing)
    is never replaced: the new file is hard-linked to ``target``, which fails if it exists,
    and :class:`OutputError` says so; ``tmp`` is removed either way. Where the file system
    has no hard links the check falls back to an existence test just before the rename.
    """
    tmp, target = Path(tmp), Path(target)
    os.chmod(tmp, 0o666 & ~_umask())
    if replace:
        os.replace(tmp, target)
        return target
    try:
        os.link(tmp, target)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"Output {str(target)!r} appeared while vsrpipe was writing it and was kept; "
            "run again with --overwrite to replace it."
        ) from None
    except OSError:  # no hard links here (e.g. some network or FAT file systems)
        if os.path.lexists(target):
            tmp.unlink(missing_ok=True)
            raise OutputError(
                f"Output {str(target)!r} appeared while vsrpipe was writing it and was kept; "
                "run again with --overwrite to replace it."
            ) from None
        os.replace(tmp, target)
        return target
    tmp.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def atomic_output(target: Path | str, *, replace: bool = True) -> Iterator[Path]:
    """``with atomic_output(path) as tmp:`` write ``tmp``; it is published on success, removed on error.

    OS errors while writing or publishing become :class:`OutputError` naming ``target``.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        publish(tmp, target, replace=replace)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"Could not write {str(target)!r}: {exc.strerror or exc}.") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: Path | str, data: bytes | Callable[[BinaryIO], object], *, replace: bool = True) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary file object) to ``target`` atomically."""
    target = Path(target)
    with atomic_output(target, replace=replace) as tmp:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return target
