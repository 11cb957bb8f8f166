"""Paths and atomic output: the one place that checks an output path and publishes a file.

Every file vsrpipe writes (videos, reports, kernels, figures, weights, checkpoints) is
written to a hidden temporary file beside its target and renamed into place only when it
is complete, so an interrupted or failed run never leaves a half-written file at the
target path. :func:`publish` refuses to replace a file it was not told it may replace.

Temporary files are named ``.NAME.vsrpipe-HOST-PID-RANDOM.partial.EXT``: the host tag and
the process id say whose they are, so that the next run on the same output can remove the
ones a killed process (``kill -9``, a crash, a power cut) left behind — and only those:
a file whose process is still alive, or which another machine or container wrote, is
never touched (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from vsr_pipeline.errors import InputError, OutputError

__all__ = [
    "atomic_output", "check_paths", "check_report_path", "describe_os_error", "fitting_name", "fsync_file", "publish", "publish_dir",
    "remove_stale_temps", "set_publish_guard", "temp_dir_for", "temp_path_for", "write_bytes_atomic",
]

log = logging.getLogger(__name__)

# errno values that mean "the disk (or the user's quota) is full"
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


def describe_os_error(exc: BaseException) -> str:
    """A short reason for an OS error while writing: "the disk is full" for ENOSPC/EDQUOT/EFBIG, else its text."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EFBIG):
        return "the disk is full (no space left on device)"
    if code == getattr(errno, "EDQUOT", None):
        return "the disk quota is exceeded"
    return getattr(exc, "strerror", None) or str(exc)


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC, EDQUOT and EFBIG."""
    return getattr(exc, "errno", None) in _FULL


def check_paths(src: Path | str, dst: Path | str, overwrite: bool) -> None:
    """Refuse an output that is the input, exists without ``overwrite``, or cannot be written.

    A symbolic link at ``dst`` counts as an existing output even when it dangles.
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
    if os.path.lexists(dst) and not overwrite:
        what = "already exists" if dst.exists() else "already exists (a symbolic link to a missing file)"
        raise OutputError(f"Output {str(dst)!r} {what}; pass --overwrite to replace it.")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"Output folder {str(parent)!r} does not exist.")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"Output folder {str(parent)!r} is not writable.")


def check_report_path(report: Path | str, *, overwrite: bool, used: Iterable[Path | str] = ()) -> None:
    """Refuse a ``--report`` path that is a file the run reads or writes, a folder, or (without ``overwrite``) exists.

    ``used`` lists every path the run reads or writes (inputs, outputs, its work folder);
    a report inside a work folder counts as one of them. Raises :class:`OutputError`.
    """
    report = Path(report)
    where = report.resolve()
    for path in used:
        path = Path(path).resolve()
        if where == path or path in where.parents and path.name.endswith(".vsrpipe"):
            raise OutputError(
                f"--report {str(report)!r} is a file this run reads or writes ({str(path)!r}); choose another path."
            )
    if report.is_dir():
        raise OutputError(f"--report {str(report)!r} is a folder; give a file name such as report.json.")
    if os.path.lexists(report) and not overwrite:
        raise OutputError(f"--report {str(report)!r} already exists; pass --overwrite to replace it.")
    if not report.parent.is_dir():
        raise OutputError(f"The folder of --report {str(report)!r} does not exist.")


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
_TEMP_EXTRA = 56  # bytes a temporary name adds to the stem: ".", ".vsrpipe-HOST-PID-RANDOM", ".partial"


def fitting_name(stem: str, room: int) -> str:
    """``stem`` cut to at most ``room`` UTF-8 bytes, with a short hash of the whole stem when it had to be cut.

    Temporary and work names add bytes to the output's name; cut this way, they fit
    whatever the output's name fits, and two long names that share a beginning stay apart.
    """
    raw = stem.encode()
    if len(raw) <= room:
        return stem
    tag = "~" + hashlib.sha1(raw).hexdigest()[:8]
    return raw[: max(0, room - len(tag))].decode(errors="ignore") + tag


def _temp_stem(path: Path) -> str:
    return fitting_name(path.stem, NAME_MAX - _TEMP_EXTRA - len(path.suffix.encode()))


_guard: Callable[[Path], None] | None = None


def set_publish_guard(guard: Callable[[Path], None] | None) -> None:
    """Have :func:`publish` call ``guard(target)`` first; it raises to stop the publish (batch workers: the driver died)."""
    global _guard
    _guard = guard


def _host_tag() -> str:
    """Six hex digits naming this machine (container) so that only its own temp files are judged stale."""
    name = socket.gethostname()
    try:
        name += Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    return hashlib.sha1(name.encode()).hexdigest()[:6]


def _temp_pattern(path: Path) -> re.Pattern:
    return re.compile(
        rf"^\.{re.escape(_temp_stem(path))}\.vsrpipe-(?P<host>[0-9a-f]{{6}})-(?P<pid>\d+)-[A-Za-z0-9_]+\.partial{re.escape(path.suffix)}$"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def remove_stale_temps(path: Path | str) -> list[Path]:
    """Remove the temporary files of ``path`` that a vsrpipe process now dead left behind; returns them.

    Only files named by :func:`temp_path_for` for this very output, written on this
    machine (host tag), by a process that no longer exists, are removed, each with a
    warning. Other runs' live temp files, and anything else in the folder, are left alone.
    """
    path = Path(path)
    pattern, host, removed = _temp_pattern(path), _host_tag(), []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.match(name)
        if m is None or m["host"] != host or int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
            continue
        stale = path.parent / name
        try:
            if stale.is_dir() and not stale.is_symlink():  # an image sequence's staging folder (temp_dir_for)
                shutil.rmtree(stale)
            else:
                stale.unlink()
        except OSError:
            continue
        log.warning("removed %s, a temporary file left by an earlier run (process %s) that did not finish", stale, m["pid"])
        removed.append(stale)
    return removed


def temp_path_for(path: Path | str) -> Path:
    """A fresh, hidden temporary file in ``path``'s folder with the same extension (created empty).

    Stale temporary files of the same output from dead processes are removed first.
    """
    path = Path(path)
    remove_stale_temps(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{_temp_stem(path)}.vsrpipe-{_host_tag()}-{os.getpid()}-", suffix=".partial" + path.suffix, dir=path.parent
        )
    except OSError as exc:
        raise OutputError(f"Output folder {str(path.parent)!r} is not writable ({describe_os_error(exc)}).") from exc
    os.close(fd)
    return Path(name)


def temp_dir_for(path: Path | str) -> Path:
    """A fresh, hidden temporary folder beside ``path``, named as :func:`temp_path_for` names files (mode 0700).

    Image sequences are written into one and published file by file, or as a whole
    folder (:func:`publish_dir`). Stale ones of dead processes are removed first.
    """
    path = Path(path)
    remove_stale_temps(path)
    try:
        return Path(tempfile.mkdtemp(
            prefix=f".{_temp_stem(path)}.vsrpipe-{_host_tag()}-{os.getpid()}-", suffix=".partial" + path.suffix, dir=path.parent
        ))
    except OSError as exc:
        raise OutputError(f"Output folder {str(path.parent)!r} is not writable ({describe_os_error(exc)}).") from exc


def publish_dir(tmp: Path | str, target: Path | str) -> bool:
    """Rename the finished temporary folder ``tmp`` to ``target`` unless something is there; False when it was.

    The folder gets the permissions the umask gives a new folder (mkdtemp makes 0700).
    An empty folder that appeared at ``target`` meanwhile counts as something (the caller
    then publishes the files into it one by one).
    """
    tmp, target = Path(tmp), Path(target)
    if _guard is not None:
        _guard(target)
    os.chmod(tmp, 0o777 & ~_umask())
    if os.path.lexists(target):
        return False
    try:
        os.rename(tmp, target)  # over an empty folder that appeared just now: nothing is lost
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            return False
        raise
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _link_noreplace(tmp: Path, target: Path) -> bool:
    """Give ``tmp`` the name ``target`` unless something is there; False when it was."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here (some network or FAT file systems)
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(target):
            return False
        os.rename(tmp, target)  # the existence test and the rename are not atomic here
        return True
    tmp.unlink(missing_ok=True)
    return True


def _keep_aside(tmp: Path, target: Path) -> Path | None:
    """Publish ``tmp`` under the first free name ``NAME.vsrpipe-N.EXT`` beside ``target``; None when that fails too."""
    for n in range(1, 100):
        stem = fitting_name(target.stem, NAME_MAX - 12 - len(target.suffix.encode()))
        aside = target.with_name(f"{stem}.vsrpipe-{n}{target.suffix}")
        try:
            if _link_noreplace(tmp, aside):
                return aside
        except OSError:
            return None
    return None


def publish(tmp: Path | str, target: Path | str, *, replace: bool = True) -> Path:
    """Move the finished temporary file ``tmp`` to ``target``; returns ``target``.

    The file gets the permissions the umask gives a new file (mkstemp makes 0600). With
    ``replace=False`` an existing ``target`` (a file, or a symbolic link, that appeared
    while we were writing) is never replaced: the new file is hard-linked to ``target``,
    which fails if anything is there. The finished result is then kept beside it as
    ``NAME.vsrpipe-N.EXT`` and :class:`OutputError` (exit 4) names both. Where the file
    system has no hard links the check falls back to an existence test just before the rename.
    """
    tmp, target = Path(tmp), Path(target)
    if _guard is not None:
        _guard(target)
    os.chmod(tmp, 0o666 & ~_umask())
    if replace:
        os.replace(tmp, target)
        return target
    if _link_noreplace(tmp, target):
        return target
    aside = _keep_aside(tmp, target)
    tmp.unlink(missing_ok=True)
    where = (
        f"this run's result was saved as {str(aside)!r} instead" if aside is not None
        else "this run's result could not be kept and was removed"
    )
    raise OutputError(
        f"Output {str(target)!r} appeared while vsrpipe was writing it and was left as it is; {where} "
        "(run again with --overwrite to replace the output)."
    )


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
        raise OutputError(f"Could not write {str(target)!r}: {describe_os_error(exc)}.") from exc
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


def fsync_file(path: Path | str) -> None:
    """Flush ``path`` (a file or a folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
