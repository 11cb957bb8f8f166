"""`enhance --adapt …` end to end with a tiny VSRNet saved to a weights file."""

import json

import pytest
from click.testing import CliRunner

import vsr_pipeline
from clips import make_clip, read_back
from vsr_pipeline.cli import main


@pytest.mark.parametrize("method", ["consistency", "online", "masked", "internal"])
def test_api_adapt_methods(tmp_path, tiny_weights, method):
    c = make_clip(tmp_path / "in.mp4", n=6, size=(32, 24))
    out = tmp_path / "out.mp4"
    opts = {"mc_passes": 4} if method == "masked" else {}
    if method != "online":  # online takes steps_per_frame; max_steps would be refused as ignored
        opts["max_steps"] = 3
    r = vsr_pipeline.enhance(c.path, out, model=str(tiny_weights), scale=2, adapt=method, **opts)
    assert r.frames == 6 and r.output_size == (64, 48)
    assert r.adapt["method"] == method and r.adapt["totals"]["frames"] == 6
    assert r.adapt["totals"]["steps"] > 0
    back = read_back(out)
    assert len(back["pts"]) == 6


def test_cli_adapt_with_report(tmp_path, tiny_weights):
    c = make_clip(tmp_path / "in.mp4", n=4, size=(32, 24))
    report = tmp_path / "run.json"
    r = CliRunner().invoke(
        main,
        ["enhance", str(c.path), str(tmp_path / "out.mkv"), "-s", "2", "--model", str(tiny_weights),
         "--adapt", "consistency", "--degradation", "gauss:sigma=1.0", "--max-steps", "2", "--backtrack", "0.5",
         "--report", str(report)],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["frames"] == 4
    assert data["adapt"]["degradation"] == "gauss:sigma=1.0"
    assert len(data["adapt"]["frames"]) == 4
    assert all(f["steps"] >= 1 for f in data["adapt"]["frames"])


def test_adapt_bad_inputs(tmp_path, tiny_weights):
    c = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    out = tmp_path / "out.mp4"
    runner = CliRunner()
    r = runner.invoke(main, ["enhance", str(c.path), str(out), "-s", "2", "--adapt", "consistency",
                             "--model", "bicubic"], catch_exceptions=False)
    assert r.exit_code == 7 and "no weights to adapt" in r.output
    r = runner.invoke(main, ["enhance", str(c.path), str(out), "-s", "2", "--adapt", "consistency",
                             "--model", str(tiny_weights), "--degradation", "gauss:sigma=oops"], catch_exceptions=False)
    assert r.exit_code == 7 and "bicubic" in r.output  # the message lists the valid forms
    r = runner.invoke(main, ["enhance", str(c.path), str(out), "-s", "2", "--adapt", "consistency",
                             "--model", str(tiny_weights), "--backtrack", "2"], catch_exceptions=False)
    assert r.exit_code == 7 and "--backtrack must be in [0, 1)" in r.output
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
