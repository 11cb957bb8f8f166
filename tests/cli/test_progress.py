"""Issue 14, item 11: progress is visible when stderr is not a terminal, as JSON lines on request,
and the terminal bar knows the frame total from the start."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import vsr_pipeline
from clips import make_clip
from vsr_pipeline.cli import main, progress


def test_log_lines_when_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(progress._LogLines.__init__, "__defaults__", (0.0,))
    c = make_clip(tmp_path / "in.mp4", n=6)
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "o.mp4"), "-s", "2", "-m", "bicubic"])
    assert r.exit_code == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("progress:")]
    assert lines and lines[-1].startswith("progress: 6/6 frames (100%), ") and " fps, ETA " in lines[-1]
    assert r.stdout == ""


def test_quiet_silences_log_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(progress._LogLines.__init__, "__defaults__", (0.0,))
    c = make_clip(tmp_path / "in.mp4", n=3)
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "o.mp4"), "-s", "2", "-m", "bicubic", "-q"])
    assert r.exit_code == 0 and r.stderr == "" and r.stdout == ""


@pytest.mark.parametrize("command", ["enhance", "degrade"])
def test_progress_json_lines(tmp_path, monkeypatch, command):
    monkeypatch.setattr(progress._JsonLines.__init__, "__defaults__", (0.0,))
    c = make_clip(tmp_path / "in.mp4", n=6)
    out = tmp_path / ("o.mp4" if command == "enhance" else "lr.mkv")
    extra = ["-m", "bicubic"] if command == "enhance" else []
    r = CliRunner().invoke(main, [command, str(c.path), str(out), "-s", "2", *extra, "--progress", "json", "-q"])
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0] == {"frames": 0, "total": 6, "fps": 0.0, "eta": None}  # the total before any frame
    assert rows[-1]["frames"] == 6 and rows[-1]["total"] == 6 and rows[-1]["eta"] == 0.0
    assert all(set(row) == {"frames", "total", "fps", "eta"} for row in rows)
    assert [row["frames"] for row in rows] == sorted(row["frames"] for row in rows)
    assert r.stderr == ""  # --quiet: no summary; the JSON is still there


def test_total_known_before_the_model_loads(tmp_path, monkeypatch):
    import vsr_pipeline.pipeline as pipeline

    calls = []
    real = pipeline.Enhancer

    def enhancer(*a, **k):
        calls.append("model")
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "Enhancer", enhancer)
    c = make_clip(tmp_path / "in.mp4", n=4)
    vsr_pipeline.enhance(c.path, tmp_path / "o.mp4", scale=2, model="bicubic", progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 4) and calls[1] == "model" and calls[-1] == (4, 4)


def test_bar_shows_total_from_first_call(monkeypatch):
    reporter, update = progress.progress_bar(False, "bar")
    try:
        update(0, 120)
        assert reporter.bar.total == 120 and reporter.bar.n == 0
        update(7, 120)
        assert reporter.bar.n == 7
    finally:
        reporter.close()
