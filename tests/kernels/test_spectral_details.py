"""The spectral estimator in detail: settings, the luma and spectrum it reads, the fit on a
synthetic power-law scene, the σ floor and cap, and the fallback messages word for word.

Companion of test_spectral.py (issue 18, mutation testing). The scenes here are synthetic
power-law noise (power ∝ |f|^-2, the model the estimator assumes), so the spectral slope it
reports can be checked against the slope that was built in.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.kernels import gaussian_kernel, stride_offset
from vsr_pipeline.degrade.operator import blur
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.kernels import spectral as sk
from vsr_pipeline.kernels.spectral import SpectralConfig, estimate_kernel_spectral, gaussian_from_covariance


def powerlaw(n: int = 2, h: int = 96, w: int = 128, alpha: float = 2.0, seed: int = 0) -> torch.Tensor:
    """(n, 3, h, w) grey frames in [0, 1] whose power spectrum falls as |f|^-alpha."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    out = []
    for _ in range(n):
        img = np.fft.ifft2((rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))) * f ** (-alpha / 2)).real
        img = (img - img.min()) / (img.max() - img.min())
        out.append(np.stack([img] * 3))
    return torch.from_numpy(np.stack(out)).float()


# settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("band", [(0.0, 0.2), (0.1, 0.1), (0.2, 0.1), (0.02, 0.25)])
def test_band_limits(band):
    with pytest.raises(ConfigError) as err:
        SpectralConfig(band=band)
    assert str(err.value) == f"Spectral band must satisfy 0 < low < high <= 0.24 cycles/px, got {band!r}."


def test_band_edges_and_smallest_counts_are_accepted():
    SpectralConfig(band=(0.001, 0.24))
    SpectralConfig(radii=1, angles=40, min_samples=40, min_size=1, max_frames=1)  # 1 × 40 is exactly enough


@pytest.mark.parametrize("name,value", [("radii", 0), ("angles", -3), ("min_samples", 0), ("max_frames", 2.0), ("min_size", "64")])
def test_counts_must_be_positive_integers(name, value):
    with pytest.raises(ConfigError) as err:
        SpectralConfig(**{name: value})
    assert str(err.value) == f"Spectral setting {name} must be a positive integer, got {value!r}."


def test_too_few_sample_points_for_min_samples():
    with pytest.raises(ConfigError) as err:
        SpectralConfig(radii=3, angles=13, min_samples=40)
    assert str(err.value) == "Spectral settings: radii × angles must be at least min_samples."


# what the fit reads --------------------------------------------------------------------------

def test_luma_is_exact_bt601_weights_in_float64():
    x = torch.rand(2, 3, 5, 7)
    want = 0.299 * x[:, 0].double() + 0.587 * x[:, 1].double() + 0.114 * x[:, 2].double()
    got = sk._luma(x)
    assert got.dtype == np.float64 and got.shape == (2, 5, 7)
    assert np.abs(got - want.numpy()).max() < 1e-15


def test_power_spectrum_is_the_mean_windowed_periodogram():
    rng = np.random.default_rng(1)
    gray = rng.random((3, 6, 10))
    window = np.outer(np.hanning(6), np.hanning(10))
    want = np.mean([np.abs(np.fft.fft2((g - g.mean()) * window)) ** 2 for g in gray], axis=0)
    got = sk._power_spectrum(gray)
    assert got.shape == (6, 10)
    assert np.allclose(got, np.fft.fftshift(want), rtol=1e-12, atol=1e-12)


def test_power_law_scene_slope_and_no_blur():
    """Unblurred power-law noise: the fitted slope is the one built in (2) and Σ' is near zero."""
    cov, info = sk.spectral_covariance(powerlaw())
    assert set(info) == {"noise", "samples", "alpha"}
    assert info["alpha"] == pytest.approx(2.0, abs=0.2)
    assert info["samples"] > 300 and info["noise"] > 0
    assert cov.shape == (2, 2) and cov[0, 1] == cov[1, 0]
    assert np.abs(cov).max() < 0.3  # (LR px²); a blur of σ = 1 HR px would give 4/3 · 1 / 4 ≈ 0.33 per axis
    cov2, info2 = sk.spectral_covariance(powerlaw(alpha=3.0))
    assert info2["alpha"] == pytest.approx(3.0, abs=0.3)


def test_the_estimate_is_the_fitted_covariance_scaled_to_the_kernel():
    hr = powerlaw(n=2, h=192, w=256, seed=3)
    truth = gaussian_kernel(1.6, 13, offset=stride_offset(2))
    lr = blur(hr.double(), truth, stride=2).float()
    cov, _ = sk.spectral_covariance(lr)
    r = estimate_kernel_spectral(lr, 2)
    assert r.fallback_reason is None
    want = gaussian_from_covariance(cov * 4 / 3.0, 2, 13)
    assert np.abs(r.kernel - want).max() < 1e-12
    assert np.abs(r.kernel_x2 - want).max() < 1e-12  # at ×2 the ×2 kernel is the kernel
    assert 0.0 < r.seconds < 60.0


# the σ floor and cap -------------------------------------------------------------------------

def _iso(var: float, s: int = 2) -> np.ndarray:
    return gaussian_from_covariance(np.diag([var, var]), s, 6 * s + 1)


def test_sigma_floor(caplog):
    """Unblurred input fits Σ ≈ 0: every axis is raised to the floor (min_sigma · s)²."""
    config = SpectralConfig(min_sigma=1.5, max_sigma_fraction=0.5)
    with caplog.at_level(logging.INFO, logger="vsr_pipeline.kernels.spectral"):
        r = estimate_kernel_spectral(powerlaw(), 2, config)
    assert r.fallback_reason is None
    assert np.abs(r.kernel - _iso(9.0)).max() < 1e-12
    clip, summary = [r.getMessage() for r in caplog.records]
    assert clip.startswith("Spectral kernel estimate: variances [") and clip.endswith(" px² clipped to [9, 42.2]")
    assert re.fullmatch(r"Spectral kernel estimate: \d+ samples, noise floor [0-9.e+-]+, spectral slope 2\.\d\d", summary)


def test_sigma_cap(caplog):
    """A wide blur with a small cap: every axis is lowered to (max_sigma_fraction · size)²."""
    hr = powerlaw(n=2, h=192, w=256, seed=3)
    lr = blur(hr.double(), gaussian_kernel(2.5, 13, offset=stride_offset(2)), stride=2).float()
    config = SpectralConfig(min_sigma=0.01, max_sigma_fraction=0.1)
    with caplog.at_level(logging.INFO, logger="vsr_pipeline.kernels.spectral"):
        r = estimate_kernel_spectral(lr, 2, config)
    assert np.abs(r.kernel - _iso(1.3**2)).max() < 1e-12
    assert "clipped to [0.0004, 1.69]" in caplog.text


def test_no_clipping_message_when_nothing_is_clipped(caplog):
    hr = powerlaw(n=2, h=192, w=256, seed=3)
    lr = blur(hr.double(), gaussian_kernel(1.6, 13, offset=stride_offset(2)), stride=2).float()
    with caplog.at_level(logging.INFO, logger="vsr_pipeline.kernels.spectral"):
        r = estimate_kernel_spectral(lr, 2)
    assert r.fallback_reason is None
    assert "clipped" not in caplog.text
    assert "samples, noise floor" in caplog.text


def test_clipping_at_x4_is_said_once_for_the_x4_kernel(caplog):
    config = SpectralConfig(min_sigma=1.5, max_sigma_fraction=0.5)
    with caplog.at_level(logging.INFO, logger="vsr_pipeline.kernels.spectral"):
        r = estimate_kernel_spectral(powerlaw(h=128, w=128), 4, config)
    assert r.kernel.shape == (25, 25) and r.kernel_x2.shape == (13, 13)
    assert np.abs(r.kernel - _iso(36.0, 4)).max() < 1e-12
    assert np.abs(r.kernel_x2 - _iso(9.0, 2)).max() < 1e-12
    assert caplog.text.count("clipped to") == 1 and "clipped to [36, 156]" in caplog.text


# fallbacks -----------------------------------------------------------------------------------

def test_frames_of_exactly_min_size_are_estimated():
    r = estimate_kernel_spectral(powerlaw(h=64, w=64))  # the default scale is ×2
    assert r.fallback_reason is None and r.scale == 2 and r.kernel.shape == (13, 13)


def test_fallback_messages_in_full():
    bad = powerlaw()
    bad[0, 1, 3, 3] = float("inf")
    r = estimate_kernel_spectral(bad, 2)
    assert r.fallback_reason == "the frames hold NaN or infinite values"
    r = estimate_kernel_spectral(torch.full((2, 3, 96, 96), 0.5), 2)
    assert r.fallback_reason == (
        "the scene is flat (mean gradient 0 < 0.002), so it holds no detail to learn a blur from"
    )
    noise = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    r = estimate_kernel_spectral(noise, 2)
    assert r.fallback_reason.startswith("only ") and r.fallback_reason.endswith(
        " of the spectrum's samples rise above the noise (at least 40 are needed), so the blur cannot be read from it"
    )
    assert 0.0 < r.seconds < 60.0  # the time spent is reported with this fallback
