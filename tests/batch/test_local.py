"""The local engine with worker processes: same outputs as in process, a dead worker's job retried."""

from __future__ import annotations

import pytest

from vsr_pipeline.api import make_config
from vsr_pipeline.batch.runner import BatchOptions, run_batch

from clips import make_clip
from batch_helpers import assert_same_video, leftovers


def fresh_forkserver() -> None:
    """Stop this process's fork server: the next pool starts one with today's environment (the fault point)."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()


def test_jobs_2_equals_jobs_1_and_survives_a_killed_worker(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate((5, 7, 26)):
        make_clip(src / f"c{i}.mkv", n=n, size=(32, 24))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    one = run_batch(src, tmp_path / "one", config, BatchOptions(segment_frames=10))
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("VSRPIPE_BATCH_FAULT", f"worker-once:{marker}")  # a worker dies at its first job
    fresh_forkserver()
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


def test_a_busy_worker_told_to_stop_unwinds_its_job_and_ends(tmp_path):
    """SIGTERM during a job: the job unwinds (nothing published) and the worker ends instead of waiting for work,
    so that a broken pool's join of its workers returns."""
    import os
    import signal
    import time

    from vsr_pipeline.batch.jobs import Job
    from vsr_pipeline.batch.local import LocalEngine

    make_clip(tmp_path / "long.mkv", n=300, size=(320, 240))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    engine = LocalEngine(jobs=2)
    try:
        engine.submit(Job("file", "long.mkv", tmp_path / "long.mkv", tmp_path / "out.mkv", config))
        deadline = time.monotonic() + 120
        while not engine.progress() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.progress(), "the job never reported progress"
        (pid,) = list(engine._pool._processes)
        assert engine._running and not next(iter(engine._running)).done()  # still mid-job
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while "State:\tZ" not in open(f"/proc/{pid}/status").read() if os.path.exists(f"/proc/{pid}") else False:
            assert time.monotonic() < deadline, "a worker stopped mid-job stayed alive"
            time.sleep(0.05)
        assert not (tmp_path / "out.mkv").exists()
        engine.retries = 0  # the lost job is not run again
        assert engine.poll(10)[0][1]["error"] == "Its worker process died 1 times."
    finally:
        engine.close()


def test_a_worker_the_pools_terminate_missed_does_not_hang_the_driver(tmp_path, monkeypatch):
    """The pool's manager terminates the workers it knows, then joins them all; one started while it looked is
    joined unterminated (CPython 3.12). Simulated by a manager whose terminate() does nothing: the engine must
    end the workers itself. A timer rescues a hung run so that the test fails instead of hanging."""
    import concurrent.futures.process as cfp
    import multiprocessing.process
    import os
    import signal
    import threading

    from vsr_pipeline.batch import local

    real_terminate = multiprocessing.process.BaseProcess.terminate

    def terminate(self):
        if isinstance(threading.current_thread(), cfp._ExecutorManagerThread):
            return  # the manager's terminate misses every worker
        real_terminate(self)

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "terminate", terminate)
    engines = []
    real_init = local.LocalEngine.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        engines.append(self)

    monkeypatch.setattr(local.LocalEngine, "__init__", init)
    hung = []

    def rescue():
        hung.append(True)
        for engine in engines:
            for pid in list(getattr(engine._pool, "_processes", None) or {}):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate((5, 7)):
        make_clip(src / f"c{i}.mkv", n=n, size=(32, 24))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("VSRPIPE_BATCH_FAULT", f"worker-once:{marker}")
    fresh_forkserver()
    timer = threading.Timer(90, rescue)
    timer.start()
    try:
        result = run_batch(src, tmp_path / "out", config, BatchOptions(jobs=2, segment_frames=10))
    finally:
        timer.cancel()
    assert marker.exists() and not hung, "the driver hung on a worker the pool's terminate() missed"
    assert result.exit_code == 0 and [o.status for o in result.outcomes] == ["done"] * 2
