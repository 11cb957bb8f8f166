"""Issue 14, items 8 and 9: RGB sources are read exactly; degrade writes exact, lossless RGB material.

The reader takes RGB samples as they are (no swscale, only bit-depth scaling): 8-bit RGB
must match PyAV's own ``rgb24`` of the same frame with a maximum error of 0, and evaluate's
Y-PSNR must agree with an independent one on an RGB reference to 0.005 dB.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clips import make_clip, pattern, write_rgb
from vsr_pipeline.cli import main
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.io.reader import VideoReader


def pyav_rgb24(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def noisy_frames(n: int = 4, w: int = 48, h: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(pattern(i, w, h).astype(int) + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8) for i in range(n)]


@pytest.mark.parametrize(
    "codec,pix_fmt,ext,decoded",
    [("ffv1", "bgr0", ".mkv", "bgr0"), ("ffvhuff", "gbrp", ".avi", "gbrp"), ("libx264rgb", "rgb24", ".mkv", "gbrp"),
     ("utvideo", "gbrp", ".avi", "gbrp"), ("ffvhuff", "bgra", ".avi", "bgra"), ("huffyuv", "rgb24", ".avi", "bgr0")],
)
def test_8bit_rgb_read_exactly(tmp_path, codec, pix_fmt, ext, decoded):
    src = write_rgb(tmp_path / f"rgb{ext}", noisy_frames(), codec, pix_fmt, {"qp": "0"} if codec == "libx264rgb" else None)
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == decoded
    ours = [f.rgb for f in VideoReader(src)]
    ref = pyav_rgb24(src)
    assert len(ours) == len(ref) == 4
    for got, want in zip(ours, ref):
        scaled = got.permute(1, 2, 0).double().numpy() * 255
        assert np.abs(scaled - np.round(scaled)).max() < 1e-4  # exact 8-bit levels, no rounding drift
        assert np.abs(np.round(scaled).astype(int) - want.astype(int)).max() == 0


def test_10bit_planar_rgb_read_exactly(tmp_path):
    src = write_rgb(tmp_path / "rgb10.mkv", noisy_frames(2), "ffv1", "gbrp10le")
    with av.open(str(src)) as c:
        raw = []
        for f in c.decode(video=0):
            g, b, r = (np.frombuffer(p, np.uint16).reshape(p.height, -1)[:, : f.width] for p in f.planes[:3])
            raw.append(np.stack([r, g, b]).astype(np.float64))
    for frame, want in zip(VideoReader(src), raw):
        assert np.abs(frame.rgb.double().numpy() * 1023 - want).max() < 1e-3


def y_psnr_independent(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    """BT.601 Y-PSNR (MATLAB rgb2ycbcr) of uint8 RGB frames, in float64, from scratch."""
    def y(x):
        x = x.astype(np.float64) / 255
        return (16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255

    ya, yb = y(a)[crop:-crop, crop:-crop], y(b)[crop:-crop, crop:-crop]
    return 10 * math.log10(1 / np.mean((ya - yb) ** 2))


def test_evaluate_agrees_with_independent_y_psnr_on_rgb(tmp_path):
    clean = noisy_frames(4, seed=1)
    rng = np.random.default_rng(7)
    distorted = [np.clip(f.astype(int) + rng.integers(-6, 7, f.shape), 0, 255).astype(np.uint8) for f in clean]
    ref = write_rgb(tmp_path / "ref.mkv", clean, "ffv1", "bgr0")
    out = write_rgb(tmp_path / "out.mkv", distorted, "ffv1", "bgr0")
    r = CliRunner().invoke(main, ["evaluate", str(out), "-r", str(ref), "--no-perceptual", "--json", str(tmp_path / "s.json"), "-q"])
    assert r.exit_code == 0, r.output
    import json

    scores = json.loads((tmp_path / "s.json").read_text())
    ours = [f["psnr"] for f in scores["frames"]]
    theirs = [y_psnr_independent(a, b, 4) for a, b in zip(pyav_rgb24(out), pyav_rgb24(ref))]
    assert len(ours) == 4
    assert max(abs(o - t) for o, t in zip(ours, theirs)) < 0.005


# 9. degrade writes lossless RGB test material ----------------------------------------------

@pytest.mark.parametrize("pix_fmt,depth", [("bgr0", 8), ("gbrp10le", 10)])
def test_degrade_writes_exact_rgb_with_ffv1(tmp_path, pix_fmt, depth):
    c = make_clip(tmp_path / "hr.mp4", n=3, size=(64, 48))
    out = tmp_path / "lr.mkv"
    r = CliRunner().invoke(main, ["degrade", str(c.path), str(out), "-s", "2", "-c", "ffv1", "--pix-fmt", pix_fmt])
    assert r.exit_code == 0, r.output
    assert f"ffv1 {pix_fmt} lossless" in r.output
    op = parse_degradation("bicubic", 2)
    maxval = (1 << depth) - 1
    want = [torch.round(op(f.rgb).clamp(0, 1) * maxval) for f in VideoReader(c.path)]
    with av.open(str(out)) as cont:
        cc = cont.streams.video[0].codec_context
        assert cc.pix_fmt == pix_fmt and cc.colorspace == 0 and cc.color_range == 2  # tagged RGB, full range
    got = [torch.round(f.rgb * maxval) for f in VideoReader(out)]
    assert len(got) == 3
    for g, w in zip(got, want):
        assert (g - w).abs().max().item() == 0


def test_degrade_ffv1_default_summary_says_lossless(tmp_path):
    c = make_clip(tmp_path / "hr.mp4", n=2, size=(64, 48))
    r = CliRunner().invoke(main, ["degrade", str(c.path), str(tmp_path / "lr.mkv"), "-s", "2", "-c", "ffv1"])
    assert r.exit_code == 0, r.output
    assert "ffv1 yuv444p lossless" in r.output and "default quality" not in r.output


@pytest.mark.parametrize(
    "args,match",
    [
        (["-c", "ffv1", "--pix-fmt", "gbrp"], "Encoder ffv1 cannot write pixel format 'gbrp'; with ffv1 use one of the RGB formats bgr0"),
        (["--pix-fmt", "bgr0"], "for RGB output use --codec ffv1 in .mkv, lossless, or libx264rgb"),
        (["-c", "ffv1", "--pix-fmt", "rgb8"], "Encoder ffv1 cannot write pixel format 'rgb8'"),
    ],
)
def test_degrade_rgb_refusals_say_what_works(tmp_path, args, match):
    c = make_clip(tmp_path / "hr.mp4", n=2, size=(64, 48))
    r = CliRunner().invoke(main, ["degrade", str(c.path), str(tmp_path / "lr.mkv"), "-s", "2", *args])
    assert r.exit_code == 4, r.output
    assert match in r.output and "yuv420p." not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.mp4"]
