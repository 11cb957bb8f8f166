"""vsr_pipeline.io.files on its own: output checks, temp-file names, stale temps, atomic publishing.

Fast unit tests (no video): each checks messages, return values and what is left in the
folder. The end-to-end behaviour through ``vsrpipe enhance`` is in test_output_safety.py.
"""

import errno
import hashlib
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vsr_pipeline.errors import InputError, OutputError
from vsr_pipeline.io import files


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # hidden files included


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# describe_os_error / is_disk_full -------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_disk_full_reason(code):
    exc = OSError(code, "whatever the OS says")
    assert files.describe_os_error(exc) == "the disk is full (no space left on device)"
    assert files.is_disk_full(exc)


def test_quota_reason():
    exc = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert files.describe_os_error(exc) == "the disk quota is exceeded"
    assert files.is_disk_full(exc)


def test_other_os_error_reason_is_its_text():
    exc = OSError(errno.EACCES, "Permission denied")
    assert files.describe_os_error(exc) == "Permission denied"
    assert not files.is_disk_full(exc)
    assert files.describe_os_error(OSError("no errno here")) == "no errno here"  # no strerror: str(exc)
    assert files.describe_os_error(ValueError("not an OS error")) == "not an OS error"
    assert not files.is_disk_full(ValueError("x"))


# check_paths ---------------------------------------------------------------------------------

@pytest.fixture
def src(tmp_path):
    p = tmp_path / "in.mp4"
    p.write_bytes(b"input")
    return p


def test_check_paths_accepts_a_new_output(tmp_path, src):
    files.check_paths(src, tmp_path / "out.mp4", overwrite=False)
    files.check_paths(str(src), str(tmp_path / "out.mp4"), overwrite=True)  # str paths too
    assert names(tmp_path) == ["in.mp4"]


def test_check_paths_missing_input(tmp_path):
    with pytest.raises(InputError) as err:
        files.check_paths(tmp_path / "nope.mp4", tmp_path / "out.mp4", overwrite=True)
    assert str(err.value) == f"Input file {str(tmp_path / 'nope.mp4')!r} does not exist."


@pytest.mark.parametrize("how", ["same", "hardlink", "symlink"])
def test_check_paths_output_is_input(tmp_path, src, how):
    dst = tmp_path / "other.mp4"
    if how == "same":
        dst = src
    elif how == "hardlink":
        os.link(src, dst)
    else:
        dst.symlink_to(src)
    with pytest.raises(OutputError) as err:
        files.check_paths(src, dst, overwrite=True)
    assert str(err.value) == f"Output {str(dst)!r} is the input file; choose another output path."


def test_check_paths_output_is_a_folder(tmp_path, src):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError) as err:
        files.check_paths(src, tmp_path / "d", overwrite=True)
    assert str(err.value) == f"Output {str(tmp_path / 'd')!r} is a folder; give a file name such as out.mp4."


def test_check_paths_existing_output_needs_overwrite(tmp_path, src):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    with pytest.raises(OutputError) as err:
        files.check_paths(src, dst, overwrite=False)
    assert str(err.value) == f"Output {str(dst)!r} already exists; pass --overwrite to replace it."
    files.check_paths(src, dst, overwrite=True)
    assert dst.read_bytes() == b"old"


def test_check_paths_dangling_link_is_an_existing_output(tmp_path, src):
    dst = tmp_path / "out.mp4"
    dst.symlink_to(tmp_path / "missing.mp4")
    with pytest.raises(OutputError) as err:
        files.check_paths(src, dst, overwrite=False)
    assert str(err.value) == (
        f"Output {str(dst)!r} already exists (a symbolic link to a missing file); pass --overwrite to replace it."
    )
    files.check_paths(src, dst, overwrite=True)


def test_check_paths_missing_output_folder(tmp_path, src):
    with pytest.raises(OutputError) as err:
        files.check_paths(src, tmp_path / "no" / "out.mp4", overwrite=False)
    assert str(err.value) == f"Output folder {str(tmp_path / 'no')!r} does not exist."


def test_check_paths_unwritable_output_folder(tmp_path, src, monkeypatch):
    asked = []

    def access(path, mode):
        asked.append((Path(path), mode))
        return False

    monkeypatch.setattr(os, "access", access)  # root may write anywhere: simulate a read-only folder
    with pytest.raises(OutputError) as err:
        files.check_paths(src, tmp_path / "out.mp4", overwrite=False)
    assert str(err.value) == f"Output folder {str(tmp_path)!r} is not writable."
    assert asked == [(tmp_path, os.W_OK)]


# temp-file names and stale temps -------------------------------------------------------------

def test_host_tag_is_six_hex_digits_of_host_and_boot(monkeypatch):
    tag = files._host_tag()
    boot = Path("/proc/sys/kernel/random/boot_id")
    name = socket.gethostname() + (boot.read_text().strip() if boot.exists() else "")
    assert tag == hashlib.sha1(name.encode()).hexdigest()[:6]
    monkeypatch.setattr(socket, "gethostname", lambda: "another-machine")
    assert files._host_tag() != tag and len(files._host_tag()) == 6


def test_host_tag_without_boot_id(monkeypatch):
    real = Path.read_text

    def read_text(self, *a, **k):
        if str(self).startswith("/proc/"):
            raise OSError(errno.ENOENT, "no /proc here")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(socket, "gethostname", lambda: "box")
    assert files._host_tag() == hashlib.sha1(b"box").hexdigest()[:6]


def test_temp_path_for_makes_an_empty_hidden_file_beside_the_target(tmp_path):
    tmp = files.temp_path_for(tmp_path / "clip.mkv")
    assert tmp.parent == tmp_path and tmp.read_bytes() == b""
    assert tmp.name.startswith(f".clip.vsrpipe-{files._host_tag()}-{os.getpid()}-")
    assert tmp.name.endswith(".partial.mkv")
    assert files._temp_pattern(tmp_path / "clip.mkv").match(tmp.name)
    other = files.temp_path_for(str(tmp_path / "clip.mkv"))
    assert other != tmp and names(tmp_path) == sorted([tmp.name, other.name])  # a live process's temps are kept


def test_temp_path_for_unwritable_folder(tmp_path):
    with pytest.raises(OutputError) as err:
        files.temp_path_for(tmp_path / "missing" / "out.mp4")
    assert str(err.value) == (
        f"Output folder {str(tmp_path / 'missing')!r} is not writable (No such file or directory)."
    )
    assert isinstance(err.value.__cause__, OSError)


def test_temp_pattern_matches_only_this_outputs_names():
    pat = files._temp_pattern(Path("/x/out.mp4"))
    m = pat.match(".out.vsrpipe-0a1b2c-1234-k2_j4X.partial.mp4")
    assert m is not None and m["host"] == "0a1b2c" and m["pid"] == "1234"
    for name in [
        ".out.vsrpipe-0a1b2c-1234-k2j4x9.partial.mkv",  # another extension
        ".other.vsrpipe-0a1b2c-1234-k2j4x9.partial.mp4",  # another output
        ".out.vsrpipe-0a1b2-1234-k2j4x9.partial.mp4",  # host tag too short
        ".out.vsrpipe-0A1B2C-1234-k2j4x9.partial.mp4",  # not a lower-case hex tag
        ".out.vsrpipe-0a1b2c-12a4-k2j4x9.partial.mp4",  # pid not a number
        ".out.vsrpipe-0a1b2c-1234-.partial.mp4",  # no random part
        "x.out.vsrpipe-0a1b2c-1234-k2j4x9.partial.mp4",  # not at the start
        ".out.vsrpipe-0a1b2c-1234-k2j4x9.partial.mp4.bak",  # not at the end
        ".outXvsrpipe-0a1b2c-1234-k2j4x9.partial.mp4",  # the dot is literal
    ]:
        assert pat.match(name) is None, name
    assert files._temp_pattern(Path("a+b.mp4")).match(".a+b.vsrpipe-0a1b2c-1-x.partial.mp4")  # stem escaped


def test_alive(monkeypatch):
    assert files._alive(os.getpid())
    assert not files._alive(_dead_pid())
    for exc in (PermissionError(errno.EPERM, "not yours"), OSError(errno.EINVAL, "odd")):
        def kill(pid, sig, exc=exc):
            assert sig == 0
            raise exc

        monkeypatch.setattr(os, "kill", kill)
        assert files._alive(12345)  # cannot tell: treated as alive, its file is kept


def test_remove_stale_temps(tmp_path, caplog):
    host, dead = files._host_tag(), _dead_pid()
    stale = [tmp_path / f".out.vsrpipe-{host}-{dead}-k2j4x9.partial.mp4", tmp_path / f".out.vsrpipe-{host}-{dead}-zz.partial.mp4"]
    keep = [
        tmp_path / f".out.vsrpipe-{host}-{os.getpid()}-mine.partial.mp4",  # this very process
        tmp_path / f".out.vsrpipe-{host}-{os.getppid()}-alive.partial.mp4",  # a live process
        tmp_path / f".out.vsrpipe-{'0' * 6 if host != '0' * 6 else '1' * 6}-{dead}-abcdef.partial.mp4",  # another machine
        tmp_path / f".out.vsrpipe-{host}-{dead}-abcdef.partial.mkv",  # another output
        tmp_path / "out.mp4",
    ]
    for p in stale + keep:
        p.write_bytes(b"half")
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.io.files"):
        removed = files.remove_stale_temps(str(tmp_path / "out.mp4"))
    assert sorted(removed) == sorted(stale)
    assert names(tmp_path) == sorted(p.name for p in keep)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    assert sorted(r.getMessage() for r in caplog.records) == sorted(
        f"removed {p}, a temporary file left by an earlier run (process {dead}) that did not finish" for p in stale
    )
    assert files.remove_stale_temps(tmp_path / "out.mp4") == []


def test_remove_stale_temps_missing_folder(tmp_path):
    assert files.remove_stale_temps(tmp_path / "no" / "out.mp4") == []


def test_remove_stale_temps_skips_what_it_cannot_remove(tmp_path, monkeypatch, caplog):
    host, dead = files._host_tag(), _dead_pid()
    first = tmp_path / f".out.vsrpipe-{host}-{dead}-aaa.partial.mp4"
    second = tmp_path / f".out.vsrpipe-{host}-{dead}-bbb.partial.mp4"
    for p in (first, second):
        p.write_bytes(b"half")
    real = Path.unlink

    def unlink(self, *a, **k):
        if self.name == first.name:
            raise PermissionError(errno.EACCES, "read-only")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", unlink)
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: sorted(real_listdir(p)))  # the one that fails comes first
    assert files.remove_stale_temps(tmp_path / "out.mp4") == [second]  # the next one is still tried
    assert first.exists() and not second.exists()
    assert str(first) not in caplog.text


def test_temp_path_for_removes_stale_temps_first(tmp_path):
    stale = tmp_path / f".out.vsrpipe-{files._host_tag()}-{_dead_pid()}-k2j4x9.partial.mp4"
    stale.write_bytes(b"half")
    tmp = files.temp_path_for(tmp_path / "out.mp4")
    assert names(tmp_path) == [tmp.name]


# publishing ----------------------------------------------------------------------------------

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_umask_is_read_without_changing_it(umask_027):
    assert files._umask() == 0o027
    assert files._umask() == 0o027


def _tmp(tmp_path, text="new", name="out.txt"):
    t = files.temp_path_for(tmp_path / name)
    t.write_text(text)
    return t


@pytest.mark.parametrize("replace", [True, False])
def test_publish_new_target_gets_umask_permissions(tmp_path, umask_027, replace):
    t = _tmp(tmp_path)
    assert (t.stat().st_mode & 0o777) == 0o600  # mkstemp's
    assert files.publish(str(t), str(tmp_path / "out.txt"), replace=replace) == tmp_path / "out.txt"
    assert (tmp_path / "out.txt").read_text() == "new"
    assert ((tmp_path / "out.txt").stat().st_mode & 0o777) == 0o640
    assert names(tmp_path) == ["out.txt"]


def test_publish_permissions_with_an_open_umask(tmp_path):
    old = os.umask(0)
    try:
        files.publish(_tmp(tmp_path), tmp_path / "out.txt")
    finally:
        os.umask(old)
    assert ((tmp_path / "out.txt").stat().st_mode & 0o777) == 0o666  # read/write for all, never executable


def test_publish_says_when_the_result_could_not_be_kept(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("theirs")
    monkeypatch.setattr(files, "_keep_aside", lambda tmp, target: None)
    with pytest.raises(OutputError) as err:
        files.publish(_tmp(tmp_path), target, replace=False)
    assert str(err.value) == (
        f"Output {str(target)!r} appeared while vsrpipe was writing it and was left as it is; this run's result "
        "could not be kept and was removed (run again with --overwrite to replace the output)."
    )
    assert names(tmp_path) == ["out.txt"]


def test_publish_replaces_by_default(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    files.publish(_tmp(tmp_path), tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "new" and names(tmp_path) == ["out.txt"]


def test_publish_without_replace_keeps_existing_and_saves_aside(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("theirs")
    (tmp_path / "out.vsrpipe-1.txt").write_text("an earlier one")
    with pytest.raises(OutputError) as err:
        files.publish(_tmp(tmp_path), target, replace=False)
    aside = tmp_path / "out.vsrpipe-2.txt"
    assert str(err.value) == (
        f"Output {str(target)!r} appeared while vsrpipe was writing it and was left as it is; this run's result "
        f"was saved as {str(aside)!r} instead (run again with --overwrite to replace the output)."
    )
    assert target.read_text() == "theirs" and aside.read_text() == "new"
    assert (tmp_path / "out.vsrpipe-1.txt").read_text() == "an earlier one"
    assert names(tmp_path) == ["out.txt", "out.vsrpipe-1.txt", "out.vsrpipe-2.txt"]


def test_keep_aside_gives_up_after_99_names(tmp_path):
    target = tmp_path / "out.txt"
    for n in range(1, 100):
        (tmp_path / f"out.vsrpipe-{n}.txt").write_text("taken")
    t = _tmp(tmp_path)
    assert files._keep_aside(t, target) is None
    assert t.exists()
    (tmp_path / "out.vsrpipe-99.txt").unlink()
    assert files._keep_aside(t, target) == tmp_path / "out.vsrpipe-99.txt"
    assert not t.exists()


def test_keep_aside_os_error_is_none(tmp_path, monkeypatch):
    def link(a, b):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "link", link)
    t = _tmp(tmp_path)
    assert files._keep_aside(t, tmp_path / "out.txt") is None
    assert t.exists()


def test_link_noreplace(tmp_path):
    t = _tmp(tmp_path)
    target = tmp_path / "out.txt"
    target.write_text("theirs")
    assert files._link_noreplace(t, target) is False
    assert t.read_text() == "new" and target.read_text() == "theirs"
    target.unlink()
    assert files._link_noreplace(t, target) is True
    assert target.read_text() == "new" and not t.exists()


@pytest.mark.parametrize("code", [errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS])
def test_link_noreplace_without_hard_links_renames(tmp_path, monkeypatch, code):
    def link(a, b):
        raise OSError(code, "no hard links")

    monkeypatch.setattr(os, "link", link)
    t = _tmp(tmp_path)
    target = tmp_path / "out.txt"
    target.symlink_to(tmp_path / "missing")  # a dangling link is something there
    assert files._link_noreplace(t, target) is False
    assert t.exists() and os.readlink(target) == str(tmp_path / "missing")
    target.unlink()
    assert files._link_noreplace(t, target) is True
    assert target.read_text() == "new" and not t.exists()


def test_link_noreplace_other_errors_propagate(tmp_path, monkeypatch):
    def link(a, b):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "link", link)
    t = _tmp(tmp_path)
    with pytest.raises(OSError) as err:
        files._link_noreplace(t, tmp_path / "out.txt")
    assert err.value.errno == errno.EACCES
    assert names(tmp_path) == [t.name]


# atomic_output / write_bytes_atomic ----------------------------------------------------------

def test_atomic_output_publishes_on_success(tmp_path):
    with files.atomic_output(str(tmp_path / "r.json")) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".r.vsrpipe-")
        tmp.write_text("{}")
        assert names(tmp_path) == [tmp.name]
    assert names(tmp_path) == ["r.json"] and (tmp_path / "r.json").read_text() == "{}"


def test_atomic_output_error_leaves_nothing(tmp_path):
    with pytest.raises(KeyError):
        with files.atomic_output(tmp_path / "r.json") as tmp:
            tmp.write_text("half")
            raise KeyError("boom")
    assert names(tmp_path) == []


def test_atomic_output_os_error_is_output_error(tmp_path):
    (tmp_path / "r.json").write_text("old")
    with pytest.raises(OutputError) as err:
        with files.atomic_output(tmp_path / "r.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(err.value) == f"Could not write {str(tmp_path / 'r.json')!r}: the disk is full (no space left on device)."
    assert isinstance(err.value.__cause__, OSError)
    assert names(tmp_path) == ["r.json"] and (tmp_path / "r.json").read_text() == "old"


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_output_path_writer_failing_midway_keeps_the_old_target(tmp_path, exc):
    # a writer that takes a path (safetensors' save_file, torch.save) and dies half-way through
    (tmp_path / "w.safetensors").write_bytes(b"old weights")

    def save_file(path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(b"half of the new")
        raise exc("writer died")

    with pytest.raises(exc):
        with files.atomic_output(tmp_path / "w.safetensors") as tmp:
            assert tmp.suffix == ".safetensors" and tmp.name.startswith(".")
            save_file(str(tmp))
    assert names(tmp_path) == ["w.safetensors"]  # the temp is gone, no partial file anywhere
    assert (tmp_path / "w.safetensors").read_bytes() == b"old weights"
    with pytest.raises(exc):  # and a new output: nothing at its path
        with files.atomic_output(tmp_path / "new.safetensors") as tmp:
            save_file(str(tmp))
    assert names(tmp_path) == ["w.safetensors"]


def test_atomic_output_nothing_at_the_target_until_complete(tmp_path):
    target = tmp_path / "ckpt.pt"
    with files.atomic_output(target) as tmp:
        tmp.write_bytes(b"part one")
        assert not target.exists()
        with open(tmp, "ab") as fh:
            fh.write(b", part two")
        assert not target.exists()
    assert target.read_bytes() == b"part one, part two" and names(tmp_path) == ["ckpt.pt"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~files._umask()  # not mkstemp's 0600


def test_atomic_output_without_replace(tmp_path):
    (tmp_path / "r.json").write_text("old")
    with pytest.raises(OutputError, match="appeared while vsrpipe was writing it"):
        with files.atomic_output(tmp_path / "r.json", replace=False) as tmp:
            tmp.write_text("new")
    assert (tmp_path / "r.json").read_text() == "old" and (tmp_path / "r.vsrpipe-1.json").read_text() == "new"
    assert names(tmp_path) == ["r.json", "r.vsrpipe-1.json"]


def test_write_bytes_atomic_bytes_and_writer(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    assert files.write_bytes_atomic(str(tmp_path / "a.bin"), b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert files.write_bytes_atomic(tmp_path / "b.bin", lambda fh: fh.write(b"abc")) == tmp_path / "b.bin"
    assert (tmp_path / "b.bin").read_bytes() == b"abc"
    assert len(synced) == 2
    files.write_bytes_atomic(tmp_path / "a.bin", b"again")
    assert (tmp_path / "a.bin").read_bytes() == b"again"
    with pytest.raises(OutputError):
        files.write_bytes_atomic(tmp_path / "a.bin", b"not this", replace=False)
    assert (tmp_path / "a.bin").read_bytes() == b"again"
    assert names(tmp_path) == ["a.bin", "a.vsrpipe-1.bin", "b.bin"]
