"""`vsrpipe degrade`, `evaluate` and `compare` through click: outputs, messages, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from fakes import MeanAbs
from clips import make_clip, read_back
from vsr_pipeline import evaluate as ev
from vsr_pipeline.cli import main
from vsr_pipeline.evaluate import scoring
from vsr_pipeline.metrics import PerceptualMetric


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def files(folder: Path) -> list[str]:
    """Everything in ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def hr(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "hr.mp4", n=6, size=(64, 48), audio=True).path


@pytest.fixture
def fast_perceptual(monkeypatch):
    """ST-LPIPS replaced by a cheap stand-in and LPIPS missing, to test the wiring quickly."""

    monkeypatch.setattr(scoring, "load_stlpips", lambda: PerceptualMetric("ST-LPIPS (AlexNet)", MeanAbs()))
    monkeypatch.setattr(
        scoring, "load_lpips", lambda weights_path=None: PerceptualMetric("LPIPS (AlexNet)", reason=f"backbone weights not found at {weights_path}")
    )


# --------------------------------------------------------------------------- degrade


def test_degrade(hr: Path, tmp_path: Path) -> None:
    res = run("degrade", hr, tmp_path / "lr.mp4", "--scale", 2, "-d", "gauss:sigma=1.5", "--noise", 2, "--seed", 3)
    assert res.exit_code == 0, res.output
    assert "6 frames, 64x48 -> 32x24 with gauss:sigma=1.5 x2 + noise 2/255 (seed 3)" in res.stderr
    assert "lossless" in res.stderr
    back = read_back(tmp_path / "lr.mp4")
    assert back["size"] == (32, 24) and len(back["pts"]) == 6 and back["audio_packets"] > 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--scale", "1"], 7, "--scale must be greater than 1 for degrade"),
        (["-d", "gauss:sigma"], 7, "valid forms are bicubic, gauss:sigma=S"),
        (["-d", "estimate"], 7, "degrade needs a known kernel"),
        (["-d", "kernel:missing.npy"], 7, "missing.npy"),
        (["--noise", "-2"], 7, "--noise must be >= 0"),
    ],
)
def test_degrade_bad_options(hr: Path, tmp_path: Path, args: list, code: int, message: str) -> None:
    res = run("degrade", hr, tmp_path / "lr.mp4", *args)
    assert res.exit_code == code and message in res.output, res.output
    assert files(tmp_path) == ["hr.mp4"]


def test_degrade_bad_paths_and_odd_size(hr: Path, tmp_path: Path) -> None:
    res = run("degrade", tmp_path / "nope.mp4", tmp_path / "lr.mp4")
    assert res.exit_code == 3 and "does not exist" in res.output
    (tmp_path / "lr.mp4").write_bytes(b"keep")
    res = run("degrade", hr, tmp_path / "lr.mp4", "--scale", 2)
    assert res.exit_code == 4 and "already exists; pass --overwrite" in res.output
    assert (tmp_path / "lr.mp4").read_bytes() == b"keep"
    odd = make_clip(tmp_path / "odd.mp4", n=2, size=(66, 48)).path
    res = run("degrade", odd, tmp_path / "lr420.mp4", "--scale", 2, "--pix-fmt", "yuv420p")
    assert res.exit_code == 7 and "33x24, and yuv420p needs an even width and height" in res.output
    assert files(tmp_path) == ["hr.mp4", "lr.mp4", "odd.mp4"]


# --------------------------------------------------------------------------- evaluate


def test_evaluate_writes_table_json_csv_plot(hr: Path, tmp_path: Path, fast_perceptual) -> None:
    lr, up = tmp_path / "lr.mp4", tmp_path / "up.mp4"
    assert run("degrade", hr, lr, "--scale", 2).exit_code == 0
    assert run("enhance", lr, up, "--scale", 2, "--model", "bicubic", "-q").exit_code == 0
    res = run("evaluate", up, "-r", hr, "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--plot", tmp_path / "p.png", "--crop", 2)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["frame", "time", "(s)", "PSNR", "(dB)", "SSIM", "ST-LPIPS", "(AlexNet)"]
    assert len(lines) == 1 + 6 + 1 + 1 + 1 + 1  # head, frames, rule, mean, matched, LPIPS line
    assert lines[-2].startswith("6 of 6 frames matched") and "border crop 2 px" in lines[-2]
    assert lines[-1].startswith("LPIPS: unavailable (backbone weights not found")
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["frames"]) == 6 and data["metrics"]["st_lpips"] == "ST-LPIPS (AlexNet)"
    assert 25 < data["mean"]["psnr"] < 60 and "LPIPS (AlexNet)" in data["unavailable"]
    mean_row = (tmp_path / "r.csv").read_text().splitlines()[-1].split(",")
    assert mean_row[0] == "mean" and float(mean_row[3]) == pytest.approx(data["mean"]["psnr"], rel=1e-5)
    with Image.open(tmp_path / "p.png") as png:
        assert png.format == "PNG"

    # --json - puts only JSON on stdout; the table moves to stderr
    res = run("evaluate", up, "-r", hr, "--json", "-", "--no-perceptual", "--summary")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["matched_frames"] == 6 and "st_lpips" not in json.loads(res.stdout)["metrics"]
    assert " mean " in res.stderr and "frame" in res.stderr


def test_evaluate_bad_input(hr: Path, tmp_path: Path) -> None:
    short = make_clip(tmp_path / "short.mp4", n=4, size=(64, 48)).path
    small = make_clip(tmp_path / "small.mp4", n=6, size=(32, 24)).path
    late = make_clip(tmp_path / "late.mp4", n=6, size=(64, 48), pts=[(i + 30) * 100 for i in range(6)]).path
    report = ["--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--plot", tmp_path / "p.png", "--no-perceptual"]
    before = files(tmp_path)
    cases = [
        ([short, "-r", hr], 3, "has 4 frames but the reference"),
        ([short, "-r", hr], 3, "has 6"),
        ([small, "-r", hr], 3, "is 32x24 but the reference"),
        ([small, "-r", hr], 3, "is 64x48"),
        ([late, "-r", hr], 3, "No frame of"),
        ([hr, "-r", hr, "--crop", 30], 7, "--crop 30 leaves"),
        ([tmp_path / "nope.mp4", "-r", hr], 3, "does not exist"),
    ]
    for args, code, message in cases:
        res = run("evaluate", *args, *report)
        assert res.exit_code == code and message in res.output, (args, res.output)
    res = run("evaluate", hr, "-r", hr, "--plot", tmp_path / "p.xyz")
    assert res.exit_code == 7 and "needs an extension matplotlib writes" in res.output
    res = run("evaluate", hr, "-r", hr, "--csv", hr)
    assert res.exit_code == 4 and "is the input file" in res.output
    assert files(tmp_path) == before  # no report file, no temporary file left

    (tmp_path / "r.json").write_text("keep")
    res = run("evaluate", hr, "-r", hr, "--json", tmp_path / "r.json", "--no-perceptual")
    assert res.exit_code == 4 and "already exists; pass --overwrite" in res.output
    assert (tmp_path / "r.json").read_text() == "keep"
    assert run("evaluate", hr, "-r", hr, "--json", tmp_path / "r.json", "--no-perceptual", "-y", "-q").exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["mean"]["psnr"] is None  # identical: infinite


# --------------------------------------------------------------------------- compare


def test_compare(hr: Path, tmp_path: Path) -> None:
    fig = tmp_path / "fig.png"
    res = run("compare", hr, hr, "-r", hr, "--frame", 2, "--crop", "4,8,16,12", "--zoom", 3, "--labels", "a,b", "-o", fig)
    assert res.exit_code == 0, res.output
    with Image.open(fig) as img:
        assert img.size == ev.figure_size((64, 48), (4, 8, 16, 12), 3, 3)
    assert "a: PSNR inf dB, SSIM 1.0000" in res.stderr


def test_compare_bad_input(hr: Path, tmp_path: Path) -> None:
    small = make_clip(tmp_path / "small.mp4", n=2, size=(32, 24)).path
    fig = tmp_path / "fig.png"
    cases = [
        ([hr, "--crop", "50,40,20,10"], 7, "outside the 64x48 frame"),
        ([hr, "--crop", "1,2,3"], 7, "--crop must be four integers x,y,w,h"),
        ([hr, "--crop", "0,0,8,8", "--frame", 6], 3, "Frame 6 is beyond the end of"),
        ([hr, "--crop", "0,0,8,8", "--frame", 6], 3, "which has 6 frames"),
        ([hr, small, "--crop", "0,0,8,8"], 3, "hr.mp4 64x48, small.mp4 32x24"),
        ([hr, "-r", small, "--crop", "0,0,8,8"], 3, "small.mp4 32x24"),
        ([hr, "--crop", "0,0,8,8", "--labels", "a,b"], 7, "--labels gives 2 labels for 1 inputs"),
        ([hr, "--crop", "0,0,8,8", "--frame", -1], 2, "--frame"),
        ([tmp_path / "nope.mp4", "--crop", "0,0,8,8"], 3, "does not exist"),
    ]
    for args, code, message in cases:
        res = run("compare", *args, "-o", fig)
        assert res.exit_code == code and message in res.output, (args, res.output)
    res = run("compare", hr, "--crop", "0,0,8,8", "-o", tmp_path / "fig.jpg")
    assert res.exit_code == 7 and "give it a .png name" in res.output
    assert files(tmp_path) == ["hr.mp4", "small.mp4"]
    fig.write_bytes(b"keep")
    res = run("compare", hr, "--crop", "0,0,8,8", "-o", fig)
    assert res.exit_code == 4 and fig.read_bytes() == b"keep"
