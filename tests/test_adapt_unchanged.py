"""Issue 14, item 10: when no adaptation step lowers the loss, the output is the trained network's,
bit for bit, and the summary and the report say how many frames were left unchanged."""

import json

import av
import numpy as np
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.cli import main


def planes(path):
    with av.open(str(path)) as c:
        return [np.concatenate([np.frombuffer(p, np.uint8) for p in f.planes]) for f in c.decode(video=0)]


def test_first_step_raises_loss_output_identical_and_reported(tmp_path, tiny_weights):
    c = make_clip(tmp_path / "in.mp4", n=5, size=(32, 24))
    common = ["-s", "2", "--model", str(tiny_weights), "--codec", "ffv1", "--pix-fmt", "yuv444p", "--scene-threshold", "0"]
    r0 = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "none.mkv"), *common], catch_exceptions=False)
    assert r0.exit_code == 0, r0.output
    report = tmp_path / "run.json"
    # an absurd learning rate: the first Adam step throws the weights far off, so the loss rises
    # (the probe is off: it would catch that rate before Algorithm 1 runs)
    r1 = CliRunner().invoke(
        main,
        ["enhance", str(c.path), str(tmp_path / "adapted.mkv"), *common, "--adapt", "consistency", "--adapt-lr", "50",
         "--max-steps", "3", "--patience", "1", "--guard", "0", "--no-lr-search", "--report", str(report)],
        catch_exceptions=False,
    )
    assert r1.exit_code == 0, r1.output
    assert "5 of 5 frames unchanged" in r1.output
    a, b = planes(tmp_path / "none.mkv"), planes(tmp_path / "adapted.mkv")
    assert len(a) == len(b) == 5 and all(np.array_equal(x, y) for x, y in zip(a, b))
    data = json.loads(report.read_text())["adapt"]
    assert data["totals"]["unchanged"] == 5
    assert all(f["unchanged"] and f["steps"] >= 1 for f in data["frames"])
