"""kill -9 of a `batch --jobs 2` driver: its workers and fork server stop, and nothing is published after it died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clips import make_clip
from batch_helpers import CLI


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stop_when_the_driver_is_killed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        make_clip(src / f"c{i}.mp4", n=80, size=(96, 64), seed=i)
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-c", CLI, "batch", str(src), str(out), "--jobs", "2", "--model", "vsrnet-x4",
         "--segment-frames", "0", "--progress", "json"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    workers: set[int] = set()
    try:
        for line in driver.stderr:  # wait until both workers are inside a job
            if line.startswith("{") and json.loads(line).get("frames", 0) > 0:
                break
        workers = descendants(driver.pid)
        assert len(workers) >= 3  # the fork server and two workers (and the resource tracker)
        published = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(alive(p) for p in workers):
            time.sleep(0.2)
        assert not [p for p in workers if alive(p)], "workers outlived their driver"
        # nothing was published after the driver died, and the workers removed their temporary files
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == published
        assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".vsrpipe"]
    finally:
        driver.kill()
        for p in workers | descendants(driver.pid):
            if alive(p):
                os.kill(p, signal.SIGKILL)
