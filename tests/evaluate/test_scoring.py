"""evaluate_videos end to end on synthetic clips: scores, reports, perceptual metrics, mismatches."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from clips import make_clip
from evaluate_helpers import blur_and_noise, decoded, write_copy
from fakes import MeanAbs
from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.evaluate import scoring as ev
from vsr_pipeline.evaluate.figures import plot_psnr
from vsr_pipeline.metrics import PerceptualMetric, psnr, ssim


def test_identical_clips(hr: Path) -> None:
    r = ev.evaluate_videos(hr, hr, perceptual=False)
    assert (r.matched, r.output_frames, r.reference_frames, r.size, r.crop) == (6, 6, 6, (64, 48), 4)
    assert all(row.psnr == math.inf and row.ssim == pytest.approx(1.0) for row in r.frames)
    assert r.mean["psnr"] == math.inf and r.mean["ssim"] == pytest.approx(1.0)
    assert json.loads(r.to_json())["mean"]["psnr"] is None  # strict JSON has no Infinity
    assert r.to_csv().splitlines()[-1].startswith("mean,,,inf,1")
    assert [row.frame for row in r.frames] == [row.reference_frame for row in r.frames] == list(range(6))


def test_known_degraded_copy_scores_like_metrics(hr: Path, tmp_path: Path) -> None:
    out = write_copy(hr, tmp_path / "out.mkv", blur_and_noise)
    r = ev.evaluate_videos(out, hr, crop=3, perceptual=False)
    assert r.matched == 6
    for row, a, b in zip(r.frames, decoded(out), decoded(hr), strict=True):
        assert row.psnr == pytest.approx(psnr(a, b, crop=3), abs=1e-9)
        assert row.ssim == pytest.approx(ssim(a, b, crop=3), abs=1e-9)
        assert row.time == pytest.approx(row.frame * 0.04)
    assert 20 < r.mean["psnr"] < 40
    assert r.mean["psnr"] == pytest.approx(sum(x.psnr for x in r.frames) / 6)

    # json, csv and plot hold the same numbers
    data = json.loads(ev.write_json(r, tmp_path / "r.json").read_text())
    assert [f["psnr"] for f in data["frames"]] == [x.psnr for x in r.frames]
    assert data["matched_frames"] == 6 and data["crop"] == 3 and data["size"] == [64, 48]
    rows = list(csv.DictReader(io.StringIO(ev.write_csv(r, tmp_path / "r.csv").read_text())))
    assert len(rows) == 7 and rows[-1]["frame"] == "mean"
    assert float(rows[2]["ssim"]) == pytest.approx(r.frames[2].ssim, rel=1e-5)
    with Image.open(plot_psnr(r, tmp_path / "psnr.png")) as png:
        assert png.format == "PNG" and png.size == (800, 320)
    table = ev.format_table(r)
    assert "PSNR (dB)" in table and " mean " in table and "6 of 6 frames matched" in table
    assert not list(tmp_path.glob(".*partial*"))


def test_perceptual_metrics_are_labelled_apart(hr: Path, tmp_path: Path, monkeypatch) -> None:
    out = write_copy(hr, tmp_path / "out.mkv", blur_and_noise)
    monkeypatch.setattr(ev, "load_stlpips", lambda: PerceptualMetric("ST-LPIPS (AlexNet)", MeanAbs()))
    monkeypatch.setattr(ev, "load_lpips", lambda weights_path=None: PerceptualMetric("LPIPS (AlexNet)", reason="no weights here"))
    r = ev.evaluate_videos(out, hr)
    assert r.columns == {"psnr": "PSNR (dB)", "ssim": "SSIM", "st_lpips": "ST-LPIPS (AlexNet)"}
    assert r.unavailable == {"LPIPS (AlexNet)": "no weights here"}
    a, b = decoded(out)[1], decoded(hr)[1]
    assert r.frames[1].st_lpips == pytest.approx(float((a - b)[:, 4:-4, 4:-4].abs().mean()), rel=1e-5)
    assert r.frames[1].lpips is None
    table = ev.format_table(r)
    assert "ST-LPIPS (AlexNet)" in table and "LPIPS: unavailable (no weights here)" in table


def test_real_stlpips_and_lpips_from_a_local_file(tmp_path: Path) -> None:
    """The real networks, on two frames: ST-LPIPS from its package, LPIPS from a weights file."""
    torchvision = pytest.importorskip("torchvision")
    if not ev.load_stlpips().available:
        pytest.skip("stlpips-pytorch is not usable here")
    torch.manual_seed(0)
    weights = tmp_path / "alexnet.pth"
    torch.save({k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items() if k.startswith("features.")}, weights)
    short = make_clip(tmp_path / "short.mp4", n=2, size=(64, 48)).path
    out = write_copy(short, tmp_path / "out.mkv", blur_and_noise)
    r = ev.evaluate_videos(out, short, lpips_weights=weights)
    assert set(r.perceptual.values()) == {"ST-LPIPS (AlexNet)", "LPIPS (AlexNet)"} and not r.unavailable
    assert all(0 < row.st_lpips < 1 and 0 < row.lpips for row in r.frames)


def test_reference_section(hr: Path, tmp_path: Path) -> None:
    part = write_copy(hr, tmp_path / "part.mkv", start=0.08)  # frames 2..5, timestamps from 0
    r = ev.evaluate_videos(part, hr, reference_start=0.08, perceptual=False)
    assert (r.matched, r.output_frames, r.reference_frames) == (4, 4, 4)
    assert r.mean["psnr"] > 40
    with pytest.raises(InputError, match=r"has 4 frames but the reference .* has 6; .*--reference-start"):
        ev.evaluate_videos(part, hr, perceptual=False)


def test_mismatches(hr: Path, tmp_path: Path) -> None:
    short = make_clip(tmp_path / "short.mp4", n=4, size=(64, 48)).path
    with pytest.raises(InputError, match=r"'.*short.mp4' has 4 frames but the reference '.*hr.mp4' has 6"):
        ev.evaluate_videos(short, hr, perceptual=False)
    small = make_clip(tmp_path / "small.mp4", n=6, size=(32, 24)).path
    with pytest.raises(InputError, match=r"is 32x24 but the reference .* is 64x48"):
        ev.evaluate_videos(small, hr, perceptual=False)
    late = make_clip(tmp_path / "late.mp4", n=6, size=(64, 48), pts=[(i + 20) * 100 for i in range(6)]).path
    with pytest.raises(InputError, match=r"No frame of .* matches .*within half a frame, 20\.0 ms.*the output starts at 0\.800 s"):
        ev.evaluate_videos(late, hr, perceptual=False)
    with pytest.raises(ConfigError, match=r"--crop 20 leaves 24x8 of the 64x48 frames"):
        ev.evaluate_videos(hr, hr, crop=20, perceptual=False)
