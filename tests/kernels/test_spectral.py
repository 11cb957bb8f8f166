"""The spectral (closed-form, cross-scale) kernel estimator: accuracy on known blurs, fallbacks, wiring."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.cli import main
from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel, gaussian_kernel, stride_offset
from vsr_pipeline.degrade.operator import blur
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.kernels import estimate as ke
from vsr_pipeline.kernels import metrics as km
from vsr_pipeline.kernels import spectral as sk
from vsr_pipeline.kernels.estimate import KernelEstimator
from vsr_pipeline.kernels.kernelgan import KernelGANConfig
from vsr_pipeline.kernels.metrics import kernel_covariance, kernel_error, kernel_orientation
from vsr_pipeline.kernels.spectral import SpectralConfig, estimate_kernel_spectral, gaussian_from_covariance


def _photo() -> torch.Tensor:
    """(3, 512, 512) scikit-image's astronaut in [0, 1]: a sharp natural photograph."""
    from skimage.data import astronaut

    return torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255


def _lr(hr: torch.Tensor, k: torch.Tensor, s: int) -> torch.Tensor:
    """Blur with the stride kernel k, keep every s-th pixel, round to 8 bits."""
    return blur(hr[None].double(), k, stride=s)[0].float().clamp(0, 1).mul(255).round().div(255)


def _trace(k) -> float:
    return float(np.trace(kernel_covariance(k)))


def _angle_error(a: float, b: float) -> float:
    d = abs(a - b) % math.pi
    return math.degrees(min(d, math.pi - d))


def test_estimate_follows_the_blur_width():
    """Wider truth, wider estimate: within 15 % in tr Σ for isotropic Gaussians (KernelGAN stays near 4)."""
    hr = _photo()
    traces = []
    for sigma in (1.0, 1.6, 2.2):
        truth = gaussian_kernel(sigma, 13, offset=stride_offset(2))
        r = estimate_kernel_spectral(_lr(hr, truth, 2), 2)
        assert r.fallback_reason is None and r.kernel.shape == (13, 13)
        assert r.kernel.sum() == pytest.approx(1.0)
        assert _trace(r.kernel) == pytest.approx(_trace(truth), rel=0.15)
        traces.append(_trace(r.kernel))
    assert traces == sorted(traces)


def test_orientation_of_an_anisotropic_blur_within_20_degrees():
    theta = math.radians(30)
    truth = anisotropic_gaussian_kernel(5.0, 0.7, theta, 13, offset=0.5)
    r = estimate_kernel_spectral(_lr(_photo(), truth, 2), 2)
    est, elongation = kernel_orientation(r.kernel)
    assert _angle_error(est, theta) < 20 and elongation > 2
    assert kernel_error(r.kernel, truth) < 0.5 * kernel_error(km.bicubic_kernel(2), truth)


def test_x4_is_fitted_at_x4_and_centred_for_stride_4():
    truth = anisotropic_gaussian_kernel(9.0, 4.0, 1.0, 25, offset=1.5)
    r = estimate_kernel_spectral(_lr(_photo(), truth, 4), 4)
    assert r.kernel.shape == (25, 25) and r.kernel_x2.shape == (13, 13)
    assert _trace(r.kernel) == pytest.approx(13.0, rel=0.15)
    com = km.centre_of_mass(torch.from_numpy(r.kernel)).numpy()
    assert np.allclose(com, 12 + 1.5, atol=1e-3)  # the offset of a stride-4 kernel (tails cut at the canvas)
    assert r.degradation().kind == "estimate" and r.degradation().resolved
    assert kernel_error(r.kernel, truth) < 0.5 * kernel_error(km.bicubic_kernel(4), truth)


def test_gaussian_from_covariance_has_that_covariance():
    cov = np.array([[3.0, 0.8], [0.8, 1.5]])  # (row, col)
    k = gaussian_from_covariance(cov, 2, 25)
    assert np.allclose(kernel_covariance(k), cov, atol=0.02)


# --- bad input -------------------------------------------------------------------------------
def test_small_frames_fall_back_with_the_size(caplog):
    r = estimate_kernel_spectral(torch.rand(3, 40, 100), 2)
    assert r.fallback and "100x40" in r.fallback_reason and "64" in r.fallback_reason
    assert "falls back to bicubic" in caplog.text
    assert np.allclose(r.kernel, km.bicubic_kernel(2)) and r.degradation().kind == "bicubic"


def test_flat_nan_and_noise_only_frames_fall_back():
    r = estimate_kernel_spectral(torch.full((2, 3, 96, 96), 0.5), 4)
    assert r.fallback and "flat" in r.fallback_reason and r.kernel.shape == km.bicubic_kernel(4).shape
    bad = _photo()[:, :128, :128].clone()
    bad[1, 3, 3] = float("nan")
    assert "NaN" in estimate_kernel_spectral(bad, 2).fallback_reason
    noise = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))  # white: no blur to read
    r = estimate_kernel_spectral(noise, 2)
    assert r.fallback and "above the noise" in r.fallback_reason


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="band"):
        SpectralConfig(band=(0.1, 0.3))
    with pytest.raises(ConfigError, match="kernel estimation method"):
        AdaptConfig(kernel_method="magic")


# --- wiring: cache, CLI, enhance -------------------------------------------------------------------
def test_estimator_defaults_to_spectral_and_caches_by_method(monkeypatch):
    calls = []
    real = sk.estimate_kernel_spectral
    monkeypatch.setattr(sk, "estimate_kernel_spectral", lambda *a, **k: calls.append(1) or real(*a, **k))
    frames = _photo()[:, :160, :160][None]
    est = KernelEstimator(2)
    assert isinstance(est.config, SpectralConfig)
    first = est.estimate(frames)
    assert est.estimate(frames.clone()) is first and len(calls) == 1
    assert ke._content_key(frames, 2, SpectralConfig()) != ke._content_key(frames, 2, KernelGANConfig.fast())


def test_forget_scenes_drops_scene_ids_but_keeps_the_content_cache():
    est = KernelEstimator(2)
    a, b = _photo()[:, :160, :160][None], _photo()[:, 200:360, 200:360][None]
    est.degradation_for_scene(0, a)
    est.forget_scenes()
    est.degradation_for_scene(0, b)  # scene 0 of a new clip: estimated from its own frames
    assert (est.hits, est.misses) == (0, 2)
    est.degradation_for_scene(1, a)  # content seen before: a cache hit
    assert (est.hits, est.misses) == (1, 2)


def test_cli_default_is_spectral_and_kernelgan_options_are_refused(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=4, size=(128, 96)).path
    runner = CliRunner()
    r = runner.invoke(main, ["estimate-kernel", str(clip), "--out", str(tmp_path / "k.npy"), "--scale", "2"])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "k.npy").shape == (13, 13)
    assert "spectral fit" in r.output or "Warning" in r.output
    r = runner.invoke(main, ["estimate-kernel", str(clip), "--out", str(tmp_path / "k2.npy"), "--reference"])
    assert r.exit_code == 7 and "--reference applies to --method kernelgan only" in r.output
    assert not (tmp_path / "k2.npy").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "k.npy"]


def test_enhance_degradation_estimate_uses_the_chosen_method(tmp_path, monkeypatch):
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_vsrnet(VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)), weights, name="tiny-x2")
    used = []
    real = ke.estimate_with
    monkeypatch.setattr(ke, "estimate_with", lambda f, s, c: used.append(type(c).__name__) or real(f, s, c))
    clip = make_clip(tmp_path / "in.mp4", n=4, size=(96, 80)).path
    report = tmp_path / "run.json"
    for method, name in (("spectral", "SpectralConfig"), ("kernelgan", "KernelGANConfig")):
        if method == "kernelgan":  # keep the test short: a few KernelGAN iterations
            monkeypatch.setattr(KernelGANConfig, "fast", classmethod(lambda cls, **kw: cls(iterations=4)))
        out = tmp_path / f"out-{method}.mp4"
        r = CliRunner().invoke(
            main,
            ["enhance", str(clip), str(out), "-s", "2", "--model", str(weights), "--adapt", "consistency",
             "--degradation", "estimate", "--kernel-method", method, "--max-steps", "1", "--report", str(report), "-y"],
            catch_exceptions=False,
        )
        assert r.exit_code == 0, r.output
        assert used[-1] == name and out.exists()
        assert json.loads(report.read_text())["adapt"]["degradation"] == "estimate"
    r = CliRunner().invoke(main, ["enhance", str(clip), str(tmp_path / "x.mp4"), "--kernel-method", "magic"])
    assert r.exit_code == 2 and "magic" in r.output and not (tmp_path / "x.mp4").exists()


# --- noise (issue 18): the estimate's bias, measured and bounded ------------------------------
# Relative error of tr Σ (estimate vs truth), x2, isotropic Gaussians σ = 1.0 / 1.6 / 2.2 on
# the astronaut, Gaussian noise added to the 8-bit LR frame (one generator seeded 18, drawn in
# the test's order), one frame. Measured:
#   noise 0:      −11.6 %, −4.8 %, −5.4 %
#   noise 3/255:  −16.4 %, −19.9 %, −16.6 %
#   noise 6/255:  −32.0 %, −30.4 %, −19.6 %
# Without the noise-floor subtraction: −24.4/−26.5/−21.5 % at 3/255, −47.8/−39.9/−28.2 % at 6/255.
# Bounds: the worst measured error plus 3–4 points (docs/kernel-estimation.md).
NOISE_BOUNDS = {0: 0.15, 3: 0.23, 6: 0.36}


def test_trace_error_with_noise_is_within_the_measured_bound():
    hr = _photo()
    g = torch.Generator().manual_seed(18)
    for sigma in (1.0, 1.6, 2.2):
        truth = gaussian_kernel(sigma, 13, offset=stride_offset(2))
        lr = _lr(hr, truth, 2)
        for noise, bound in NOISE_BOUNDS.items():
            noisy = (lr + noise / 255 * torch.randn(lr.shape, generator=g)).clamp(0, 1).mul(255).round().div(255)
            r = estimate_kernel_spectral(noisy, 2)
            assert r.fallback_reason is None
            err = _trace(r.kernel) / _trace(truth) - 1
            assert abs(err) <= bound, f"σ={sigma}, noise {noise}/255: tr Σ off by {err:+.1%} (bound {bound:.1%})"
            assert err < 0.05  # noise makes the estimate narrower, never much wider
