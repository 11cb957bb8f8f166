"""A learned blur estimator: a small CNN reads a scene's blur *beyond bicubic* from its LR luma patches.

The spectral fit (:mod:`vsr_pipeline.kernels.spectral`) assumes a power-law scene, so a soft
scene reads as blurred footage, and it returns the whole SR kernel as a Gaussian, which is
not bicubic even when the footage is plain bicubic — so adaptation then "restores" blur that
is not there. This estimator answers a narrower question in the form the degradation
operator already speaks: the covariance Σ (HR px², (row, col) order) of a Gaussian blur
applied *before* MATLAB bicubic downscaling (``aniso:l1=…,l2=…,theta=…``), with Σ = 0 meaning
plain bicubic, "no extra blur". Trained here on the training material (bigbuckbunny,
carphone, scikit-image stills; never bikes) by :mod:`vsr_pipeline.train.blurnet`; the weights
ship in ``models/weights/blurnet-x{2,4}.safetensors`` with their model card.

Per scene: up to ``max_frames`` frames, cut into ``patch``-sized LR luma patches (each
normalised to zero mean and unit variance; flat ones skipped); the network predicts Σ for
each, the median over patches is the scene's answer (projected to a covariance). A Σ whose
larger eigenvalue is under ``min_extra`` is reported as "no extra blur" and the scene gets
the bicubic operator itself, so adaptation sees the degradation the model was trained for.
Otherwise the operator blurs with ``strength`` · Σ (at ×4 half the blur read: see
:data:`STRENGTH`); the estimate's ``covariance`` keeps the reading itself.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.errors import ConfigError, ModelError
from vsr_pipeline.kernels.base import KernelEstimate, _as_frames, _check_scale, _fallback, _pick, too_small

__all__ = ["BlurNet", "LearnedConfig", "estimate_kernel_learned", "aniso_spec", "luma_patches"]

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"
# "No extra blur" below these variances (HR px²), chosen on the training material only (bigbuckbunny frames and
# 640×272 crops of them, and the scikit-image stills; plain bicubic against Gaussian σ = 1 … 2): a threshold above the
# largest reading of plain bicubic footage. At ×2 that was 0.42 (chelsea), at ×4 2.94 (chelsea; hubble_deep_field
# 2.66, bigbuckbunny crops up to 1.22) — the ×4 reading carries more of the scene's own softness. A false blur costs
# far more than a missed weak one (a false 1.44 px² at ×4 cost 2 dB on held-out footage; a true σ = 1 gains little).
MIN_EXTRA = {2: 0.5, 4: 3.0}
# The share of the read blur handed to adaptation (A' blurs with STRENGTH · Σ), chosen on the training material only:
# two 640×272 crops of bigbuckbunny, 16 ×4 scenes (15 DIV2KRK-style random kernels and σ = 2) read as blurred,
# through 8-bit 4:2:0 files, online adaptation. Mean gain over no adaptation / worst scene: full strength +0.50 /
# +0.07 dB, 0.75: +0.59 / +0.22, 0.5: +0.58 / +0.34, 0.25: +0.23 / 0.00 (the guard then keeps the weights);
# 1.5 and 2 lose up to 0.68 dB. The true kernel itself: +0.50 / −0.39. Adapting towards a weaker blur than the
# one read costs little when the reading is right and saves much when it is too strong (its ringing is what loses),
# so of the two best shares the one with the better worst case. ×2 keeps the whole reading.
STRENGTH = {2: 1.0, 4: 0.5}
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class LearnedConfig:
    """Settings of the learned estimator (the defaults are those the shipped weights were measured with)."""

    patch: int = 48  # LR patch side the network reads
    max_frames: int = 8  # frames of a scene used (evenly spaced)
    max_patches: int = 256  # patches per scene at most (evenly spaced over the frames)
    min_std: float = 0.02  # a patch whose luma standard deviation is below this is flat: skipped
    min_patches: int = 4  # fewer usable patches than this: fall back to bicubic
    min_extra: float | None = None  # HR px²: a larger eigenvalue below this is "no extra blur"; None: MIN_EXTRA[scale]
    strength: float | None = None  # share of the read Σ that A' blurs with, in (0, 1]; None: STRENGTH[scale]
    weights: str | None = None  # a .safetensors file; None: the shipped blurnet-x{scale}

    def __post_init__(self) -> None:
        for name in ("patch", "max_frames", "max_patches", "min_patches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"Learned estimator setting {name} must be a positive integer, got {value!r}.")
        if self.patch < 16:
            raise ConfigError(f"Learned estimator patch must be at least 16 px, got {self.patch}.")
        if self.min_extra is not None and not self.min_extra >= 0:
            raise ConfigError(f"Learned estimator min_extra must be ≥ 0, got {self.min_extra!r}.")
        if self.strength is not None and not 0 < self.strength <= 1:
            raise ConfigError(f"Learned estimator strength must be in (0, 1] (a share of the blur read), got {self.strength!r}.")


RADII = 6  # radial bands of a patch's power spectrum the network reads, from R_MIN to Nyquist
ANGLES = 6  # orientations (over [0, π): the spectrum is symmetric)
R_MIN = 0.05  # cycles/px: below this the band holds too few frequencies of a small patch (and the mean)


@lru_cache(maxsize=8)
def _cells(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For a P×P spectrum: the flat indices of the frequencies used and the (K, RADII·ANGLES) averaging matrix."""
    f = torch.fft.fftfreq(p, dtype=torch.float64)
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    r = torch.sqrt(fy**2 + fx**2).flatten()
    a = (torch.atan2(fy, fx) % math.pi).flatten()
    use = (r >= R_MIN) & (r < 0.5)
    band = ((r[use] - R_MIN) / (0.5 - R_MIN) * RADII).long().clamp(max=RADII - 1)
    ang = (a[use] / math.pi * ANGLES).long().clamp(max=ANGLES - 1)
    onehot = F.one_hot(band * ANGLES + ang, RADII * ANGLES).double()
    count = onehot.sum(0)
    if (count == 0).any():
        raise ConfigError(f"Learned estimator patch {p} px is too small for its {RADII}×{ANGLES} spectral bands.")
    return use.nonzero().flatten(), onehot / count


def patch_features(tiles: torch.Tensor) -> torch.Tensor:
    """(N, 1, P, P) normalised patches -> (N, RADII·ANGLES) log band energies of their windowed power spectra.

    Blur is a fall of the spectrum at high frequencies along its axes, so the network reads
    how each patch's energy falls across RADII bands in ANGLES orientations; log energies
    minus their mean make the features independent of contrast.
    """
    p = tiles.shape[-1]
    idx, average = _cells(p)
    hann = torch.hann_window(p, periodic=False, dtype=torch.float64)
    power = torch.fft.fft2(tiles[:, 0].double() * (hann[:, None] * hann[None, :])).abs().pow(2).flatten(1)  # (N, P²)
    logs = (power[:, idx] @ average).clamp(min=1e-12).log()  # (N, B)
    return (logs - logs.mean(dim=1, keepdim=True)).float()


class BlurNet(nn.Module):
    """(N, 1, P, P) normalised LR luma patches -> (N, 3) blur covariance entries (Σ_rr, Σ_rc, Σ_cc), HR px²."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(
            nn.Linear(RADII * ANGLES, features), nn.ReLU(inplace=True),
            nn.Linear(features, features), nn.ReLU(inplace=True),
            nn.Linear(features, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(patch_features(x))  # (N, 3)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """(N, RADII·ANGLES) :func:`patch_features` -> (N, 3): training reads the features once."""
        return self.mlp(features)


def luma_patches(frames: torch.Tensor, patch: int, *, max_patches: int, min_std: float) -> torch.Tensor:
    """Non-overlapping (N, 1, patch, patch) luma patches of (T, 3, H, W) frames, normalised, flat ones left out."""
    w = torch.tensor(LUMA, dtype=frames.dtype).view(1, 3, 1, 1)
    y = (frames * w).sum(1, keepdim=True)  # (T, 1, H, W)
    tiles = y.unfold(2, patch, patch).unfold(3, patch, patch)  # (T, 1, nh, nw, p, p)
    tiles = tiles.reshape(-1, 1, patch, patch)
    std = tiles.std(dim=(2, 3), keepdim=True)
    keep = std.flatten() >= min_std
    tiles, std = tiles[keep], std[keep]
    if len(tiles) > max_patches:
        idx = torch.linspace(0, len(tiles) - 1, max_patches).round().long()
        tiles, std = tiles[idx], std[idx]
    return (tiles - tiles.mean(dim=(2, 3), keepdim=True)) / std


@lru_cache(maxsize=4)
def load_blurnet(scale: int, weights: str | None = None) -> BlurNet:
    """The estimator network for ``scale`` (shipped weights, or the ``weights`` file)."""
    from safetensors.torch import load_file

    path = Path(weights) if weights else WEIGHTS / f"blurnet-x{scale}.safetensors"
    if not path.is_file():
        raise ModelError(f"The learned blur estimator has no weights for ×{scale} ({str(path)!r} is missing).")
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ModelError(f"The blur estimator weights {str(path)!r} cannot be read ({exc}).") from exc
    net = BlurNet(int(state["mlp.0.weight"].shape[0]))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"The blur estimator weights {str(path)!r} do not fit its network ({exc}).") from exc
    return net.eval()


def aniso_spec(cov: np.ndarray) -> str:
    """The ``aniso:l1=…,l2=…,theta=…`` spec of a Gaussian with covariance ``cov`` ((row, col) order, HR px²)."""
    cxy = np.array([[cov[1, 1], cov[0, 1]], [cov[0, 1], cov[0, 0]]])  # (x, y) order, the spec's convention
    values, vectors = np.linalg.eigh(cxy)
    theta = math.atan2(vectors[1, 1], vectors[0, 1]) % math.pi
    l1, l2 = (max(float(v), 1e-3) for v in (values[1], values[0]))
    return f"aniso:l1={l1:.4g},l2={l2:.4g},theta={theta:.4g}"


def estimate_kernel_learned(frames, scale: int = 4, config: LearnedConfig = LearnedConfig()) -> KernelEstimate:
    """The blur beyond bicubic of one scene's LR ``frames`` (RGB in [0, 1]) at ``scale`` -> :class:`KernelEstimate`.

    The estimate's :meth:`~KernelEstimate.degradation` is ``aniso:…`` (blur, then bicubic)
    or plain ``bicubic`` ("no extra blur"); ``kernel`` is the equivalent stride SR kernel,
    for display. Falls back to bicubic (with the reason) when the scene has too few
    patches with detail.
    """
    scale = _check_scale(scale)
    start = time.perf_counter()
    x = _pick(_as_frames(frames), config.max_frames)
    if not torch.isfinite(x).all():
        return _fallback(scale, "the frames hold NaN or infinite values")
    h, w = x.shape[-2:]
    if min(h, w) < config.patch:
        return _fallback(scale, too_small(w, h, config.patch, f"the {config.patch} px patches the network reads"))
    tiles = luma_patches(x, config.patch, max_patches=config.max_patches, min_std=config.min_std)
    if len(tiles) < config.min_patches:
        return _fallback(
            scale,
            f"only {len(tiles)} patches of {config.patch} px with detail (at least {config.min_patches} are needed)",
            time.perf_counter() - start,
        )
    net = load_blurnet(scale, config.weights)
    with torch.no_grad():
        pred = net(tiles).median(dim=0).values.double().numpy()  # (3,) Σ_rr, Σ_rc, Σ_cc
    cov = np.array([[pred[0], pred[1]], [pred[1], pred[2]]])
    values, vectors = np.linalg.eigh(cov)
    cov = vectors @ np.diag(np.clip(values, 1e-3, None)) @ vectors.T  # a covariance, never degenerate
    extra = float(np.linalg.eigvalsh(cov).max())
    seconds = time.perf_counter() - start
    least = MIN_EXTRA[scale] if config.min_extra is None else config.min_extra
    if extra < least:
        log.info("Learned blur estimate: no extra blur (largest variance %.3g px² < %.3g)", extra, least)
        return KernelEstimate(kernel=_bicubic(scale), kernel_x2=_bicubic(2), scale=scale, seconds=seconds,
                              spec="bicubic", verdict="no extra blur", covariance=cov)
    share = STRENGTH[scale] if config.strength is None else config.strength
    used = share * cov
    spec = aniso_spec(used)
    log.info("Learned blur estimate: read %s from %d patches; A' = %s (%.0f %% of it)", aniso_spec(cov), len(tiles), spec, 100 * share)
    return KernelEstimate(kernel=_composed(used, scale), kernel_x2=_composed(used, 2), scale=scale, seconds=seconds,
                          spec=spec, verdict="estimated", covariance=cov)


def _bicubic(scale: int) -> np.ndarray:
    from vsr_pipeline.kernels.metrics import bicubic_kernel

    return bicubic_kernel(scale)


def _composed(cov: np.ndarray, scale: int) -> np.ndarray:
    """The stride SR kernel of "Gaussian with ``cov``, then bicubic ×``scale``" (odd size, sum 1)."""
    from scipy.signal import convolve2d

    from vsr_pipeline.kernels.spectral import gaussian_from_covariance

    reach = int(math.ceil(3 * math.sqrt(max(float(np.linalg.eigvalsh(cov).max()), 1e-6))))
    gauss = gaussian_from_covariance(cov, 1, 2 * reach + 1)
    k = convolve2d(_bicubic(scale), gauss)
    return k / k.sum()
