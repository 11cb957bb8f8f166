"""The learned blur estimator: its conventions (covariance ↔ spec ↔ kernel), its patches, its training data, and
what the shipped weights answer on photographs with a known blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError, ModelError
from vsr_pipeline.kernels.estimate import KernelEstimator, method_config
from vsr_pipeline.kernels.learned import (
    WEIGHTS, LearnedConfig, aniso_spec, estimate_kernel_learned, load_blurnet, luma_patches,
)
from vsr_pipeline.train.blurnet import blur_fft, draw, kernel_covariance

SHIPPED = all((WEIGHTS / f"blurnet-x{s}.safetensors").is_file() for s in (2, 4))


def test_kernel_covariance_of_known_gaussians():
    k = anisotropic_gaussian_kernel(4.0, 4.0, 0.0).numpy()
    assert np.allclose(kernel_covariance(k), [[4, 0], [0, 4]], atol=0.05)
    k = anisotropic_gaussian_kernel(6.0, 1.0, 0.0).numpy()  # l1 along +x: the columns
    cov = kernel_covariance(k)
    assert cov[1, 1] == pytest.approx(6.0, abs=0.1) and cov[0, 0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("cov", [[[4.0, 1.2], [1.2, 2.0]], [[1.0, -0.6], [-0.6, 3.0]], [[2.0, 0.0], [0.0, 5.0]]])
def test_aniso_spec_is_the_gaussian_of_the_covariance(cov):
    cov = np.array(cov)
    spec = aniso_spec(cov)
    values = dict(kv.split("=") for kv in spec.split(":")[1].split(","))
    k = anisotropic_gaussian_kernel(float(values["l1"]), float(values["l2"]), float(values["theta"])).numpy()
    assert np.allclose(kernel_covariance(k), cov, atol=0.05)
    assert parse_degradation(spec, 4).kind == "aniso"


def test_blur_fft_equals_a_mirrored_convolution():
    x = torch.rand(40, 52)
    k = anisotropic_gaussian_kernel(3.0, 1.0, 0.7).float()
    ref = F.conv2d(F.pad(x[None, None], [k.shape[1] // 2] * 2 + [k.shape[0] // 2] * 2, mode="reflect"),
                   k.flip(0, 1)[None, None])[0, 0]
    assert torch.allclose(blur_fft(x, k), ref, atol=1e-5)


def test_luma_patches_are_normalised_and_skip_flat_ones():
    frames = torch.zeros(2, 3, 100, 100)
    frames[0, :, :48, :48] = torch.rand(48, 48)  # one patch with detail, the rest flat
    tiles = luma_patches(frames, 48, max_patches=10, min_std=0.02)
    assert tiles.shape == (1, 1, 48, 48)
    assert float(tiles.mean()) == pytest.approx(0, abs=1e-5) and float(tiles.std()) == pytest.approx(1, abs=1e-3)
    busy = torch.rand(3, 3, 96, 144)
    assert luma_patches(busy, 48, max_patches=100, min_std=0.02).shape[0] == 3 * 2 * 3
    assert luma_patches(busy, 48, max_patches=5, min_std=0.02).shape[0] == 5


def test_training_samples_carry_the_covariance_of_the_blur_applied():
    rng = np.random.default_rng(0)
    image = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
    x, y = draw([image], 2, 16, patch=32, sharp=0.0, noise=0.0, seed=3)
    assert x.shape == (16, 1, 32, 32) and y.shape == (16, 3)
    assert (y[:, 0] > 0).all() and (y[:, 2] > 0).all() and (y[:, 0] * y[:, 2] >= y[:, 1] ** 2).all()
    _, sharp = draw([image], 2, 8, patch=32, sharp=1.0, noise=0.0, seed=3)
    assert (sharp == 0).all()
    # blurrier samples have smoother patches: the network has something to read
    blurred, cov = draw([image], 2, 64, patch=32, sharp=0.5, noise=0.0, seed=4)
    energy = (blurred[..., 1:, :] - blurred[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
    strong, none = cov[:, 0] + cov[:, 2] > 6, cov.abs().sum(1) == 0
    assert energy[strong].mean() < energy[none].mean()


def test_config_checks():
    with pytest.raises(ConfigError, match="patch must be at least 16"):
        LearnedConfig(patch=8)
    with pytest.raises(ConfigError, match="min_extra"):
        LearnedConfig(min_extra=-1)
    with pytest.raises(ConfigError, match="use learned, spectral or kernelgan"):
        method_config("nope")
    assert isinstance(method_config("learned"), LearnedConfig)


def test_missing_weights_are_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="is missing"):
        load_blurnet(4, str(tmp_path / "none.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot be read"):
        load_blurnet(4, str(bad))


def test_a_scene_without_detail_falls_back_to_bicubic():
    est = estimate_kernel_learned(torch.full((2, 3, 96, 96), 0.5), 4, LearnedConfig(weights="unused"))
    assert est.fallback and "patches of 48 px with detail" in est.fallback_reason
    assert est.degradation().kind == "bicubic"


def _photo_lr(spec: str, scale: int) -> torch.Tensor:
    import skimage.data

    hr = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float().div(255)  # a training still
    return parse_degradation(spec, scale)(hr).clamp(0, 1).mul(255).round().div(255)[None]


@pytest.mark.skipif(not SHIPPED, reason="the blurnet weights are not in this checkout")
@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_weights_tell_plain_bicubic_from_blur(scale):
    plain = estimate_kernel_learned(_photo_lr("bicubic", scale), scale)
    assert plain.verdict == "no extra blur" and plain.degradation() == parse_degradation("bicubic", scale)
    blurred = estimate_kernel_learned(_photo_lr("gauss:sigma=2", scale), scale)
    assert blurred.verdict == "estimated" and blurred.spec.startswith("aniso:")
    assert 2.0 < float(np.linalg.eigvalsh(blurred.covariance).max()) < 7.0  # the truth is 4 px² along both axes
    k = blurred.kernel
    assert k.sum() == pytest.approx(1.0) and k.shape[0] % 2 == 1


@pytest.mark.skipif(not SHIPPED, reason="the blurnet weights are not in this checkout")
@pytest.mark.parametrize("scale,strength", [(4, None), (4, 0.8), (2, None)])
def test_adaptation_blurs_with_a_share_of_the_reading(scale, strength):
    from vsr_pipeline.kernels.learned import STRENGTH, aniso_spec

    frames = _photo_lr("gauss:sigma=2", scale)
    est = estimate_kernel_learned(frames, scale, LearnedConfig(strength=strength))
    share = STRENGTH[scale] if strength is None else strength
    assert est.verdict == "estimated" and est.spec == aniso_spec(share * est.covariance)
    full = estimate_kernel_learned(frames, scale, LearnedConfig(strength=1.0))
    assert np.allclose(full.covariance, est.covariance)  # the reading itself is reported unchanged
    # the SR kernel is bicubic's spread plus the blur used: less blur used, a narrower kernel
    spread, full_spread = (float(np.trace(kernel_covariance(e.kernel))) for e in (est, full))
    assert (spread < full_spread - 0.1) == (share < 1)


def test_strength_outside_its_range_is_refused():
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ConfigError, match="strength must be in \\(0, 1\\]"):
            LearnedConfig(strength=bad)


@pytest.mark.skipif(not SHIPPED, reason="the blurnet weights are not in this checkout")
def test_the_disk_cache_keeps_the_verdict(tmp_path):
    frames = _photo_lr("gauss:sigma=2", 4)
    first = KernelEstimator(4, LearnedConfig(), cache_dir=tmp_path).estimate(frames)
    again = KernelEstimator(4, LearnedConfig(), cache_dir=tmp_path)
    second = again.estimate(frames)
    assert again.hits == 1 and again.misses == 0
    assert (second.spec, second.verdict) == (first.spec, first.verdict)
    assert np.allclose(second.covariance, first.covariance)
    assert second.degradation() == first.degradation()


@pytest.mark.slow  # about 25 s on a loaded 2-core machine, most of it torch's first optimiser step
def test_a_tiny_training_run_writes_weights_the_estimator_loads(tmp_path, monkeypatch):
    import vsr_pipeline.train.blurnet as blurnet

    rng = np.random.default_rng(1)
    monkeypatch.setattr(blurnet, "sources", lambda every=8: [(rng.random((260, 260, 3)) * 255).astype(np.uint8)])
    out = tmp_path / "b.safetensors"
    log = blurnet.train(2, 4, out, samples=64, val_samples=16, batch=8, every=2)
    assert out.is_file() and [h["step"] for h in log["history"]] == [2, 4]
    assert math.isfinite(log["best_val"])
    load_blurnet.cache_clear()
    net = load_blurnet(2, str(out))
    assert net(torch.zeros(1, 1, 48, 48)).shape == (1, 3)


@pytest.mark.skipif(not SHIPPED, reason="the blurnet weights are not in this checkout")
def test_enhance_reports_each_scenes_blur_and_its_source(tmp_path):
    """The default `estimate` is the learned one; the report's scenes and the summary line say what it found."""
    import json

    from click.testing import CliRunner

    from vsr_pipeline.cli import main
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

    from clips import make_clip

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_vsrnet(VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)), weights, name="tiny-x2")
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(128, 96)).path
    report = tmp_path / "run.json"
    r = CliRunner().invoke(main, ["enhance", str(clip), str(tmp_path / "out.mp4"), "-s", "2", "--model", str(weights),
                                  "--adapt", "consistency", "--degradation", "estimate", "--max-steps", "1",
                                  "--report", str(report)])
    assert r.exit_code == 0, r.output
    adapt = json.loads(report.read_text())["adapt"]
    scene = adapt["scenes"]["0"]
    assert scene["source"] in ("estimated", "no extra blur")
    assert scene["degradation"] == "bicubic" if scene["source"] == "no extra blur" else scene["degradation"].startswith("aniso:")
    assert adapt["totals"]["scene_sources"] == {scene["source"]: 1}
    assert f"scene blur: 1 {scene['source']}" in r.output
    # the same estimate, read directly: the report tells the truth about it
    import av

    with av.open(str(clip)) as c:
        frames = torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
                              for f in c.decode(video=0)])
    assert estimate_kernel_learned(frames, 2).verdict == scene["source"]


def test_merged_segment_reports_keep_the_scenes():
    from vsr_pipeline.batch.segments import merge_reports

    one = {"method": "online", "degradation": "estimate", "scale": 4.0, "frames": [],
           "scenes": {"0": {"degradation": "bicubic", "source": "no extra blur"}}}
    two = {**one, "scenes": {"1": {"degradation": "aniso:l1=4,l2=1,theta=0", "source": "estimated"}}}
    merged = merge_reports([one, two])
    assert merged["scenes"] == {"0": one["scenes"]["0"], "1": two["scenes"]["1"]}
    assert merged["totals"]["scene_sources"] == {"no extra blur": 1, "estimated": 1}


@pytest.mark.skipif(not SHIPPED, reason="the blurnet weights are not in this checkout")
def test_a_soft_scene_at_x4_is_not_read_as_blur():
    """A soft photograph (a training still) (4 still frames) reads as 2.66 px² at ×4 though it is plain bicubic: under the threshold,
    so adaptation is not sent to "restore" a blur that is not there; the same scene blurred (σ = 2.5) still is."""
    import skimage.data

    hr = torch.from_numpy(skimage.data.hubble_deep_field()[:272, :640].copy()).permute(2, 0, 1).float().div(255)

    def lr(spec):
        return parse_degradation(spec, 4)(hr).clamp(0, 1).mul(255).round().div(255)[None].repeat(4, 1, 1, 1)

    plain = estimate_kernel_learned(lr("bicubic"), 4)
    assert plain.verdict == "no extra blur" and plain.degradation() == parse_degradation("bicubic", 4)
    assert 2.0 < float(np.linalg.eigvalsh(plain.covariance).max()) < 3.0  # what it reads, below MIN_EXTRA[4]
    blurred = estimate_kernel_learned(lr("gauss:sigma=2.5"), 4)
    assert blurred.verdict == "estimated"
