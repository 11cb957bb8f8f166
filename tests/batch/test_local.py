"""The local engine with worker processes: same outputs as in process, a dead worker's job retried."""

from __future__ import annotations

import pytest

from vsr_pipeline.api import make_config
from vsr_pipeline.batch.runner import BatchOptions, run_batch

from clips import make_clip
from batch_helpers import assert_same_video, leftovers


def test_jobs_2_equals_jobs_1_and_survives_a_killed_worker(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate((5, 7, 26)):
        make_clip(src / f"c{i}.mkv", n=n, size=(32, 24))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    one = run_batch(src, tmp_path / "one", config, BatchOptions(segment_frames=10))
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("VSRPIPE_BATCH_FAULT", f"worker-once:{marker}")  # a worker dies at its first job
    two = run_batch(src, tmp_path / "two", config, BatchOptions(jobs=2, segment_frames=10))
    assert marker.exists()
    assert two.exit_code == 0, two.to_dict()
    assert [o.status for o in two.outcomes] == ["done"] * 3
    for o in one.outcomes:
        assert_same_video(tmp_path / "one" / o.path, tmp_path / "two" / o.path)
    assert leftovers(tmp_path / "two") == [".vsrpipe"]


def test_bad_batch_options_are_refused():
    from vsr_pipeline.errors import ConfigError

    for kw, match in (({"jobs": 0}, "--jobs"), ({"address": "x:1"}, "--address applies only"),
                      ({"segment_frames": -1}, "--segment-frames")):
        with pytest.raises(ConfigError, match=match):
            BatchOptions(**kw)


def test_an_idle_worker_dies_at_sigterm(tmp_path):
    """An idle worker keeps SIGTERM's default action, so terminating a broken pool never waits on it.

    A Python handler there can miss a signal that lands just before the queue read starts,
    and the driver then hangs in the pool's shutdown (seen in the killed-worker test above).
    """
    import os
    import signal
    import time

    from vsr_pipeline.batch.jobs import Job
    from vsr_pipeline.batch.local import LocalEngine

    make_clip(tmp_path / "c.mkv", n=3, size=(32, 24))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    engine = LocalEngine(jobs=2)
    try:
        engine.submit(Job("file", "c.mkv", tmp_path / "c.mkv", tmp_path / "out.mkv", config))
        results = []
        deadline = time.monotonic() + 120
        while not results and time.monotonic() < deadline:
            results = engine.poll(1.0)
        assert results and "error" not in results[0][1], results
        pids = list(engine._pool._processes)
        assert pids
        for pid in pids:
            caught = int(dict(line.split(":\t") for line in open(f"/proc/{pid}/status").read().splitlines())["SigCgt"], 16)
            assert not caught & (1 << (signal.SIGTERM - 1)), f"worker {pid} catches SIGTERM while idle"
        os.kill(pids[0], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pids[0]}") and open(f"/proc/{pids[0]}/status").read().find("State:\tZ") < 0:
            assert time.monotonic() < deadline, "an idle worker outlived SIGTERM"
            time.sleep(0.05)
    finally:
        engine.close()
