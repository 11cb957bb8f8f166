"""degrade_video end to end on synthetic clips: frames, timestamps, audio, LR size, pixels, noise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clips import make_clip, read_back
from vsr_pipeline.degrade import parse_degradation
from vsr_pipeline.degrade.video import degrade_video, frame_noise
from vsr_pipeline.errors import ConfigError, InputError, OutputError
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.config import EncodeOptions


def frames(path: Path) -> list[torch.Tensor]:
    return [f.rgb for f in VideoReader(path)]


def seconds(info: dict) -> list[float]:
    return [float(p * info["time_base"]) for p in info["pts"]]


def test_degrade_keeps_frames_timestamps_audio_and_matches_the_operator(tmp_path: Path) -> None:
    hr = make_clip(tmp_path / "hr.mp4", n=8, size=(64, 48), audio=True).path
    lr = tmp_path / "lr.mp4"
    r = degrade_video(hr, lr, scale=2, degradation="gauss:sigma=1.0")
    assert (r.frames, r.input_size, r.output_size) == (8, (64, 48), (32, 24))
    assert r.degradation == "gauss:sigma=1.0" and r.lossless and r.pix_fmt == "yuv444p"

    src, out = read_back(hr), read_back(lr)
    assert out["size"] == (32, 24) and len(out["pts"]) == 8
    assert seconds(out) == pytest.approx(seconds(src), abs=1e-9)
    assert out["audio_streams"] == 1 and out["audio_packets"] == src["audio_packets"]
    assert out["audio_end"] == pytest.approx(src["audio_end"], abs=1e-6)

    op = parse_degradation("gauss:sigma=1.0", 2)
    for h, l in zip(frames(hr), frames(lr), strict=True):
        diff = (op(h).clamp(0, 1) - l).abs()
        # lossless 4:4:4: only the 8-bit rounding of RGB -> YUV -> RGB remains
        assert diff.max() * 255 < 2.5 and diff.mean() * 255 < 0.6


def test_noise_is_seeded_per_frame(tmp_path: Path) -> None:
    a = frame_noise((3, 8, 8), 5.0, seed=1, index=2)
    assert torch.equal(a, frame_noise((3, 8, 8), 5.0, seed=1, index=2))
    assert not torch.equal(a, frame_noise((3, 8, 8), 5.0, seed=1, index=3))
    assert not torch.equal(a, frame_noise((3, 8, 8), 5.0, seed=2, index=2))
    assert frame_noise((3, 256, 256), 5.0, 0, 0).std().item() * 255 == pytest.approx(5.0, rel=0.02)

    hr = make_clip(tmp_path / "hr.mkv", n=3, size=(64, 48)).path
    clean, noisy, again = (tmp_path / f"{n}.mkv" for n in ("clean", "noisy", "again"))
    degrade_video(hr, clean, scale=2, degradation="bicubic")
    degrade_video(hr, noisy, scale=2, degradation="bicubic", noise=4, seed=7)
    degrade_video(hr, again, scale=2, degradation="bicubic", noise=4, seed=7)
    for c, n, g in zip(frames(clean), frames(noisy), frames(again), strict=True):
        assert torch.equal(n, g)
        assert (n - c).std().item() * 255 == pytest.approx(4.0, rel=0.15)


def test_odd_lr_size_is_kept_exactly_in_444_and_refused_in_420(tmp_path: Path) -> None:
    hr = make_clip(tmp_path / "hr.mp4", n=3, size=(66, 48)).path
    r = degrade_video(hr, tmp_path / "lr.mp4", scale=2, degradation="bicubic")
    assert r.output_size == (33, 24) and read_back(tmp_path / "lr.mp4")["size"] == (33, 24)

    dst = tmp_path / "lr420.mp4"
    with pytest.raises(ConfigError, match=r"33x24, and yuv420p needs an even width and height"):
        degrade_video(hr, dst, scale=2, degradation="bicubic", encode=EncodeOptions(pix_fmt="yuv420p"))
    assert not dst.exists()

    # lossy 4:2:0 material when the size allows it
    r = degrade_video(hr, tmp_path / "lossy.mp4", scale=3, degradation="bicubic", crf=23, encode=EncodeOptions(pix_fmt="yuv420p"))
    assert r.output_size == (22, 16) and not r.lossless and r.pix_fmt == "yuv420p"


def test_section_starts_at_zero(tmp_path: Path) -> None:
    hr = make_clip(tmp_path / "hr.mp4", n=10, size=(64, 48), fps=25).path
    r = degrade_video(hr, tmp_path / "lr.mkv", scale=2, degradation="bicubic", start=0.2, duration=0.2)
    out = read_back(tmp_path / "lr.mkv")
    assert r.frames == 5 and seconds(out) == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scale": 1}, ConfigError, "--scale must be greater than 1 for degrade"),
        ({"scale": 0.5}, ConfigError, "got 0.5"),
        ({"degradation": "gauss:sigma"}, ConfigError, "valid forms are bicubic, gauss:sigma=S"),
        ({"degradation": "blur:r=2"}, ConfigError, "unknown kind 'blur'"),
        ({"degradation": "estimate"}, ConfigError, "degrade needs a known kernel"),
        ({"noise": -1}, ConfigError, "--noise must be >= 0"),
        ({"degradation": parse_degradation("bicubic", 3)}, ConfigError, "built for x3"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    hr = tmp_path / "hr.mp4"
    hr.write_bytes(b"")  # never opened: the options are checked first
    dst = tmp_path / "lr.mp4"
    args = {"scale": 2, "degradation": "bicubic", **kwargs}
    with pytest.raises(error, match=message.replace("(", r"\(").replace("+", r"\+")):
        degrade_video(hr, dst, **args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.mp4"]


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        degrade_video(tmp_path / "missing.mp4", tmp_path / "lr.mp4", scale=2, degradation="bicubic")
    hr = make_clip(tmp_path / "hr.mp4", n=2).path
    with pytest.raises(OutputError, match="is the input file"):
        degrade_video(hr, hr, scale=2, degradation="bicubic", overwrite=True)
    (tmp_path / "lr.mp4").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        degrade_video(hr, tmp_path / "lr.mp4", scale=2, degradation="bicubic")
    assert (tmp_path / "lr.mp4").read_bytes() == b"keep"
    assert len(read_back(hr)["pts"]) == 2  # the input is untouched
