"""The Ray engine on a local instance: actors keep a model loaded; a worker killed mid-task is retried."""

from __future__ import annotations

import json
import sqlite3

import pytest

ray = pytest.importorskip("ray")

from vsr_pipeline.api import make_config  # noqa: E402
from vsr_pipeline.batch.runner import BatchOptions, run_batch  # noqa: E402

from clips import make_clip  # noqa: E402
from batch_helpers import assert_same_video, leftovers  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    from vsr_pipeline.batch.ray_engine import init_local

    init_local(num_cpus=2)  # what --engine ray without --address starts: loopback only
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
    yield
    ray.shutdown()


def test_ray_batch_keeps_the_manifest_and_reports_progress(tmp_path, ray_instance):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=8, size=(32, 24))
    (src / "notes.txt").write_text("not a video")
    seen = []
    result = run_batch(src, tmp_path / "out", make_config(model="bicubic", scale=2),
                       BatchOptions(engine="ray", jobs=1), progress=seen.append)
    assert result.exit_code == 0 and [o.status for o in result.outcomes] == ["done", "skipped"]
    assert seen[-1].files_done == 1 and seen[-1].frames_done == 8 and seen[-1].frames_total == 8
    with sqlite3.connect(tmp_path / "out" / ".vsrpipe" / "manifest.sqlite") as db:
        assert db.execute("select path, status, frames from files").fetchall() == [("a.mp4", "done", 8)]


@pytest.mark.slow  # about 25 s: a second actor start after the kill
def test_ray_batch_survives_a_killed_worker(tmp_path, ray_instance, monkeypatch):
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("VSRPIPE_BATCH_FAULT", f"worker-once:{marker}")  # the engine hands VSRPIPE_* to its actors
    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate((6, 24)):
        make_clip(src / f"clip {i}.mkv", n=n, size=(32, 24))
    config = make_config(model="bicubic", scale=2, codec="ffv1")
    result = run_batch(src, tmp_path / "ray", config, BatchOptions(engine="ray", jobs=2, segment_frames=10))
    monkeypatch.delenv("VSRPIPE_BATCH_FAULT")
    assert marker.exists()  # a worker did kill itself at its first job
    assert result.exit_code == 0, result.to_dict()
    assert [o.status for o in result.outcomes] == ["done"] * 2
    local = run_batch(src, tmp_path / "local", config, BatchOptions(segment_frames=10))
    for o in local.outcomes:
        assert_same_video(tmp_path / "local" / o.path, tmp_path / "ray" / o.path)
    with sqlite3.connect(tmp_path / "ray" / ".vsrpipe" / "manifest.sqlite") as db:
        assert db.execute("select status, count(*) from files group by status").fetchall() == [("done", 2)]
        assert db.execute("select count(*) from segments").fetchone() == (0,)
    assert leftovers(tmp_path / "ray") == [".vsrpipe"]
    json.dumps(result.to_dict())
