"""Blind SR-kernel estimation from the LR frames' power spectrum (cross-scale, closed form).

KernelGAN's premise is that the right SR kernel ``k`` is the one under which the LR image
``y`` and its own downscaled version ``(y ⋆ k)↓2`` look alike. This module applies the same
premise to one statistic that can be matched in closed form: the power spectrum. For a
natural image (power spectrum ∝ |f|^-α) blurred with a Gaussian kernel of covariance Σ (HR
pixels) and subsampled by s, the LR spectrum P obeys

    ln P(2g) − ln P(g) = −α ln 2 − 4π² · (3 / s²) · gᵀ Σ g       (g: LR frequency, cycles/px)

so a least-squares fit of the log ratio over a band of frequencies gives Σ directly (α is
absorbed by the constant). The estimate is an anisotropic Gaussian with that covariance,
centred like every stride kernel here (``anchor + (s − 1) / 2``). It needs no training: a
few FFTs per scene, milliseconds where KernelGAN takes a minute, and the benchmarks in
docs/kernel-estimation.md show it follows the blur where KernelGAN does not.

Noise sets the limit: where the spectrum at 2g sinks towards the white-noise floor (read off
the highest frequencies, |f_x|, |f_y| > 0.4) the ratio says nothing about the blur, so those
samples are dropped and the floor is subtracted from the rest.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel, stride_offset
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.kernels.base import KernelEstimate, _as_frames, _check_scale, _fallback, _gradient_map, _pick, too_small

__all__ = ["SpectralConfig", "estimate_kernel_spectral", "spectral_covariance", "gaussian_from_covariance"]

log = logging.getLogger(__name__)

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class SpectralConfig:
    """Settings of the spectral estimator; the defaults are what the benchmarks measured."""

    band: tuple[float, float] = (0.02, 0.22)  # |g| range (cycles/LR px) of the fit; 2g stays below 0.44
    radii: int = 24  # samples along |g| in the band
    angles: int = 24  # sample directions in [0, π) (the spectrum is symmetric)
    bin_radius: float = 0.012  # frequency-domain averaging radius (cycles/px); at least 1/size of the frame
    noise_margin: float = 4.0  # use a sample only where P(g) and P(2g) exceed this × the noise floor
    min_samples: int = 40  # fewer usable samples than this: fall back to bicubic
    min_size: int = 64  # frames smaller than this (either side) fall back to bicubic
    max_frames: int = 8  # frames of a scene the spectrum is averaged over (evenly spaced)
    min_gradient: float = 2e-3  # mean clipped gradient magnitude ([0, 1] units) below which a scene is "flat"
    min_sigma: float = 0.25  # per-axis σ floor, in LR pixels (× s in HR pixels): no kernel sharper than this
    max_sigma_fraction: float = 0.2  # per-axis σ cap, as a fraction of the kernel's side

    def __post_init__(self) -> None:
        lo, hi = self.band
        if not (0 < lo < hi <= 0.24):
            raise ConfigError(f"Spectral band must satisfy 0 < low < high <= 0.24 cycles/px, got {self.band!r}.")
        for name in ("radii", "angles", "min_samples", "min_size", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"Spectral setting {name} must be a positive integer, got {value!r}.")
        if self.radii * self.angles < self.min_samples:
            raise ConfigError("Spectral settings: radii × angles must be at least min_samples.")


def kernel_size(scale: int) -> int:
    """Side of the estimated kernel: 13 at ×2, 25 at ×4 (KernelGAN's sizes)."""
    return 6 * int(scale) + 1


def _luma(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) RGB in [0, 1] -> (T, H, W) float64 luma."""
    w = torch.tensor(LUMA, dtype=torch.float64).view(1, 3, 1, 1)
    return (frames.double() * w).sum(1).numpy()


def _power_spectrum(gray: np.ndarray) -> np.ndarray:
    """Mean Hann-windowed periodogram of (T, H, W) frames, zero frequency in the middle (fftshift)."""
    _, h, w = gray.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    total = np.zeros((h, w))
    for frame in gray:
        total += np.abs(np.fft.fft2((frame - frame.mean()) * window)) ** 2
    return np.fft.fftshift(total / gray.shape[0])


def spectral_covariance(frames: torch.Tensor, config: SpectralConfig = SpectralConfig()) -> tuple[np.ndarray | None, dict]:
    """Fit the cross-scale covariance Σ' (LR px², (row, col) order) of (T, 3, H, W) frames.

    ``ln P(2g) − ln P(g) = c − 4π² gᵀ Σ' g``; the SR kernel's covariance is ``Σ' · s² / 3``.
    Returns (Σ' or None when too few samples rise above the noise, diagnostics dict).
    """
    return _fit_covariance(_luma(frames), config)


def _fit_covariance(gray: np.ndarray, config: SpectralConfig) -> tuple[np.ndarray | None, dict]:
    """:func:`spectral_covariance` on (T, H, W) luma frames."""
    from scipy.ndimage import map_coordinates, uniform_filter

    _, h, w = gray.shape
    power = _power_spectrum(gray)
    fy = (np.arange(h) - h // 2) / h  # frequency of each row of the shifted spectrum
    fx = (np.arange(w) - w // 2) / w
    corner = (np.abs(fy)[:, None] > 0.4) & (np.abs(fx)[None, :] > 0.4)
    noise = float(np.median(power[corner])) if corner.any() else 0.0
    radius = max(config.bin_radius, 1.0 / min(h, w))
    box = (2 * math.ceil(radius * h) + 1, 2 * math.ceil(radius * w) + 1)
    smooth = uniform_filter(power, size=box, mode="wrap")

    r = np.linspace(*config.band, config.radii)
    a = np.linspace(0.0, math.pi, config.angles, endpoint=False)
    gy = (r[:, None] * np.sin(a)[None, :]).ravel()
    gx = (r[:, None] * np.cos(a)[None, :]).ravel()

    def sample(vy, vx):
        return map_coordinates(smooth, [h // 2 + vy * h, w // 2 + vx * w], order=1, mode="grid-wrap")

    p1, p2 = sample(gy, gx), sample(2 * gy, 2 * gx)
    keep = (p1 > config.noise_margin * noise) & (p2 > config.noise_margin * noise) & (p2 > 0)
    info = {"noise": noise, "samples": int(keep.sum())}
    if keep.sum() < config.min_samples:
        return None, info
    y = np.log((p2[keep] - noise) / (p1[keep] - noise))
    q = -4.0 * math.pi**2
    design = np.stack([np.ones(keep.sum()), q * gy[keep] ** 2, 2 * q * gy[keep] * gx[keep], q * gx[keep] ** 2], 1)
    sol, *_ = np.linalg.lstsq(design, y, rcond=None)
    c, syy, syx, sxx = sol
    info["alpha"] = float(-c / math.log(2))
    return np.array([[syy, syx], [syx, sxx]]), info


def gaussian_from_covariance(cov: np.ndarray, scale: int, size: int) -> np.ndarray:
    """A (size, size) stride-``scale`` anisotropic Gaussian kernel with covariance ``cov`` ((row, col), HR px²)."""
    # Principal axes in (x, y) order, the convention of anisotropic_gaussian_kernel.
    cxy = np.array([[cov[1, 1], cov[0, 1]], [cov[0, 1], cov[0, 0]]])
    values, vectors = np.linalg.eigh(cxy)
    theta = math.atan2(vectors[1, 1], vectors[0, 1])
    return anisotropic_gaussian_kernel(float(values[1]), float(values[0]), theta, size, offset=stride_offset(scale)).numpy()


def estimate_kernel_spectral(frames, scale: int = 2, config: SpectralConfig = SpectralConfig()) -> KernelEstimate:
    """Estimate the SR kernel of LR ``frames`` (one scene) from their power spectrum.

    Args:
        frames: as for :func:`vsr_pipeline.kernels.kernelgan.estimate_kernel` (RGB in [0, 1]).
        scale: 2 or 4; the kernel is estimated at that scale directly.
        config: :class:`SpectralConfig`.

    Returns:
        A :class:`~vsr_pipeline.kernels.base.KernelEstimate`: an anisotropic Gaussian
        (13×13 at ×2, 25×25 at ×4), or the bicubic kernel with ``fallback_reason`` when the
        frames are too small, flat, hold NaN, or too little of their spectrum rises above
        the noise. ``kernel_x2`` is the ×2 kernel the same spectrum implies.
    """
    scale = _check_scale(scale)
    start = time.perf_counter()
    x = _pick(_as_frames(frames), config.max_frames)
    h, w = x.shape[-2:]
    if min(h, w) < config.min_size:
        return _fallback(scale, too_small(w, h, config.min_size, f"the {config.min_size} px the spectral fit needs"))
    if not torch.isfinite(x).all():
        return _fallback(scale, "the frames hold NaN or infinite values")
    gray = _luma(x)  # (T, H, W) float64, shared by the flatness test and the fit
    mean_gradient = float(torch.stack([_gradient_map(torch.from_numpy(g).float()).mean() for g in gray]).mean())
    if mean_gradient < config.min_gradient:
        return _fallback(
            scale,
            f"the scene is flat (mean gradient {mean_gradient:.2g} < {config.min_gradient:g}), "
            "so it holds no detail to learn a blur from",
        )
    cov_lr, info = _fit_covariance(gray, config)
    if cov_lr is None or not np.isfinite(cov_lr).all():
        return _fallback(
            scale,
            f"only {info['samples']} of the spectrum's samples rise above the noise (at least "
            f"{config.min_samples} are needed), so the blur cannot be read from it",
            time.perf_counter() - start,
        )
    kernels = {}
    for s in {2, scale}:
        size = kernel_size(s)
        values, vectors = np.linalg.eigh(cov_lr * s * s / 3.0)
        lo, hi = (config.min_sigma * s) ** 2, (config.max_sigma_fraction * size) ** 2
        clipped = np.clip(values, lo, hi)
        if s == scale and not np.allclose(clipped, values):
            log.info("Spectral kernel estimate: variances %s px² clipped to [%.3g, %.3g]", np.round(values, 3), lo, hi)
        kernels[s] = gaussian_from_covariance(vectors @ np.diag(clipped) @ vectors.T, s, size)
    log.info("Spectral kernel estimate: %d samples, noise floor %.3g, spectral slope %.2f", info["samples"], info["noise"], info["alpha"])
    return KernelEstimate(kernel=kernels[scale], kernel_x2=kernels[2], scale=scale, seconds=time.perf_counter() - start)
