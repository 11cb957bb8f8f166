"""Issue 14, data safety: no silent replacement, dangling links, stale temp files, a full disk.

Every bad-input case checks the message, the exit code and that nothing (no output, no
hidden temporary file) is left behind.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import vsr_pipeline
from clips import make_clip, read_back
from vsr_pipeline.cli import main
from vsr_pipeline.errors import OutputError
from vsr_pipeline.io import files, writer


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # hidden files included


def cli_proc(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vsr_pipeline.cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_partial(proc: subprocess.Popen, folder: Path, timeout: float = 120) -> Path:
    started = time.time()
    while time.time() < started + timeout:
        found = list(folder.glob(".*.partial.*"))
        if found:
            return found[0]
        assert proc.poll() is None, f"the run ended before writing: {proc.communicate()[1]}"
        time.sleep(0.02)
    raise AssertionError("no temporary output appeared")


# 1. a file that appears at the output path during the run is kept -------------------------

def test_file_appearing_during_run_is_kept_and_result_saved_aside(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=12)
    out = tmp_path / "out.mp4"

    def appear(done, expected):
        if done == 3:
            out.write_bytes(b"someone else's file")

    with pytest.raises(OutputError) as err:
        vsr_pipeline.enhance(c.path, out, scale=2, model="bicubic", progress=appear)
    aside = tmp_path / "out.vsrpipe-1.mp4"
    msg = str(err.value)
    assert "appeared while vsrpipe was writing it" in msg and repr(str(aside)) in msg and "--overwrite" in msg
    assert out.read_bytes() == b"someone else's file"
    assert len(read_back(aside)["pts"]) == 12
    assert names(tmp_path) == ["in.mp4", "out.mp4", "out.vsrpipe-1.mp4"]


def test_cli_file_copied_to_output_mid_run_exit_4(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=120, size=(96, 64))
    out = tmp_path / "out.mkv"
    proc = cli_proc("enhance", c.path, out, "-s", "2", "-m", "bicubic", "--preset", "slow")
    wait_for_partial(proc, tmp_path)
    proc.send_signal(signal.SIGSTOP)  # hold the run while the other file appears
    out.write_bytes(b"copied in")
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "appeared while vsrpipe was writing it" in err and "out.vsrpipe-1.mkv" in err
    assert out.read_bytes() == b"copied in"
    assert names(tmp_path) == ["in.mp4", "out.mkv", "out.vsrpipe-1.mkv"]


@pytest.mark.slow  # three processes: ~15 s on two cores
def test_two_concurrent_runs_one_output(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=120, size=(96, 64))
    out = tmp_path / "out.mkv"
    first = cli_proc("enhance", c.path, out, "-s", "2", "-m", "bicubic", "--preset", "slow")
    wait_for_partial(first, tmp_path)
    first.send_signal(signal.SIGSTOP)  # both have passed the start-up check now
    try:
        second = cli_proc("enhance", c.path, out, "-s", "3", "-m", "bicubic")
        _, err2 = second.communicate(timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err1 = first.communicate(timeout=120)
    assert second.returncode == 0, err2
    assert first.returncode == 4, err1
    assert "out.vsrpipe-1.mkv" in err1
    assert read_back(out)["size"] == (288, 192)  # the second run's result, not replaced
    assert read_back(tmp_path / "out.vsrpipe-1.mkv")["size"] == (192, 128)
    assert names(tmp_path) == ["in.mp4", "out.mkv", "out.vsrpipe-1.mkv"]


def test_publish_never_replaces_and_says_when_result_removed(tmp_path, monkeypatch):
    tmp = files.temp_path_for(tmp_path / "r.json")
    tmp.write_text("ours")
    (tmp_path / "r.json").symlink_to(tmp_path / "missing")  # a dangling link counts as a file
    monkeypatch.setattr(files, "_keep_aside", lambda tmp, target: None)
    with pytest.raises(OutputError, match="could not be kept and was removed"):
        files.publish(tmp, tmp_path / "r.json", replace=False)
    assert os.readlink(tmp_path / "r.json") == str(tmp_path / "missing")
    assert names(tmp_path) == ["r.json"]


# 4. a dangling symbolic link at the output path is an existing output ------------------------

def test_dangling_symlink_is_existing_output(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=3)
    out = tmp_path / "out.mp4"
    out.symlink_to(tmp_path / "nowhere.mp4")
    r = run_cli("enhance", c.path, out, "-s", "2", "-m", "bicubic")
    assert r.exit_code == 4
    assert "already exists (a symbolic link to a missing file); pass --overwrite" in r.output
    assert os.readlink(out) == str(tmp_path / "nowhere.mp4")
    assert names(tmp_path) == ["in.mp4", "out.mp4"]


# 2. stale temporary files: removed by the next run when their process is dead ---------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temp_names_carry_host_and_pid(tmp_path):
    tmp = files.temp_path_for(tmp_path / "clip.mkv")
    assert tmp.name.startswith(f".clip.vsrpipe-{files._host_tag()}-{os.getpid()}-") and tmp.name.endswith(".partial.mkv")


def test_stale_temp_of_dead_process_removed_others_kept(tmp_path, caplog):
    c = make_clip(tmp_path / "in.mp4", n=3)
    host, dead = files._host_tag(), _dead_pid()
    stale = tmp_path / f".out.vsrpipe-{host}-{dead}-k2j4x9.partial.mp4"
    keep = [
        tmp_path / f".out.vsrpipe-{host}-{os.getppid()}-abcdef.partial.mp4",  # its process is alive
        tmp_path / f".out.vsrpipe-{'0' * 6 if host != '0' * 6 else '1' * 6}-{dead}-abcdef.partial.mp4",  # another machine's
        tmp_path / f".other.vsrpipe-{host}-{dead}-abcdef.partial.mp4",  # another output's
        tmp_path / ".out.x7y8z9.partial.mp4",  # not named by vsrpipe's scheme
    ]
    for p in [stale, *keep]:
        p.write_bytes(b"half")
    r = run_cli("enhance", c.path, tmp_path / "out.mp4", "-s", "2", "-m", "bicubic")
    assert r.exit_code == 0, r.output
    assert not stale.exists() and all(p.exists() for p in keep)
    assert f"removed {stale}" in caplog.text and f"(process {dead})" in caplog.text  # WARNING: on stderr


@pytest.mark.slow  # two processes: ~15 s on two cores
def test_kill_9_leftover_removed_by_next_run(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=200, size=(96, 64))
    out = tmp_path / "out.mkv"
    proc = cli_proc("enhance", c.path, out, "-s", "2", "-m", "bicubic", "--preset", "slow")
    left = wait_for_partial(proc, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert left.exists()  # unavoidable after SIGKILL
    again = cli_proc("enhance", c.path, out, "-s", "2", "-m", "bicubic", "-t", "0.2")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"WARNING: removed {left}, a temporary file left by an earlier run (process {proc.pid})" in err
    assert names(tmp_path) == ["in.mp4", "out.mkv"]


# 3. a full disk is an output error, wherever it strikes ------------------------------------

@pytest.mark.parametrize("ext", [".mkv", ".mp4", ".mov"])
def test_disk_full_is_output_error(tmp_path, monkeypatch, ext):
    """/dev/full answers every write with ENOSPC; .mkv meets it only when the container is closed."""
    c = make_clip(tmp_path / "in.mp4", n=4)
    real = files.temp_path_for

    def full(path):
        tmp = real(path)
        tmp.unlink()
        tmp.symlink_to("/dev/full")
        return tmp

    monkeypatch.setattr(writer, "temp_path_for", full)
    out = tmp_path / f"out{ext}"
    r = run_cli("enhance", c.path, out, "-s", "2", "-m", "bicubic")
    assert r.exit_code == 4, r.output
    assert f"Could not write {str(out)!r}: the disk is full (no space left on device)." in r.output
    assert names(tmp_path) == ["in.mp4"]


def test_report_disk_full_is_output_error(tmp_path, monkeypatch):
    def no_space(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(OutputError, match="the disk is full"):
        files.write_bytes_atomic(tmp_path / "r.json", b"{}")
    assert names(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs (root only; skipped where it cannot be mounted)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("backend,ext", [("pyav", ".mkv"), ("pyav", ".mp4"), ("ffmpeg", ".mkv")])
def test_real_full_disk(tmp_path, small_disk, backend, ext):
    c = make_clip(tmp_path / "in.mp4", n=30, size=(64, 48))
    out = small_disk / f"out{ext}"
    r = run_cli("enhance", c.path, out, "-s", "4", "-m", "bicubic", "--backend", backend, "--codec", "ffv1")
    assert r.exit_code == 4, r.output
    assert ("the disk is full" if backend == "pyav" else "No space left on device") in r.output
    assert "Internal error" not in r.output
    assert names(small_disk) == []
