"""kill -9 of a `batch --jobs 2` driver: its workers and fork server stop, and nothing is published after it died.

The reproduction is scripts/check_faults.py's item 7, run here as a test: it starts the
driver on four clips, waits until both workers are inside a job, kills the driver with
SIGKILL, then checks that every process below it has exited within 20 s, that no output
appeared afterwards and that no temporary file was left.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import check_faults  # noqa: E402


def test_workers_stop_when_the_driver_is_killed(tmp_path):
    assert check_faults.check_7(tmp_path) is None


def test_the_process_tree_walk_finds_children_and_grandchildren():
    import subprocess

    outer = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)"])
    try:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(check_faults._tree(outer.pid)) < 1:
            time.sleep(0.05)
        kids = check_faults._tree(outer.pid)
        assert len(kids) == 1 and all(check_faults._alive(p) for p in kids)
    finally:
        for p in check_faults._tree(outer.pid):
            subprocess.run(["kill", "-9", str(p)])
        outer.kill()
        outer.wait()
    assert not check_faults._alive(outer.pid)
