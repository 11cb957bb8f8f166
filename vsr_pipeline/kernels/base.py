"""What both kernel estimators share: the result type, frame handling, the bicubic fallback.

:class:`KernelEstimate` is what every estimator returns (the spectral fit in
:mod:`vsr_pipeline.kernels.spectral`, KernelGAN in :mod:`vsr_pipeline.kernels.kernelgan`)
and what :class:`~vsr_pipeline.kernels.estimate.KernelEstimator` caches. The helpers here
turn a scene's frames into one (T, 3, H, W) tensor, pick the frames an estimator reads,
check the scale, build the ×4 kernel from a ×2 one and produce the bicubic fallback.
Both estimators import this module; it imports neither of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from vsr_pipeline.degrade.kernels import compose_x4
from vsr_pipeline.degrade.operator import Degradation, parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.kernels.metrics import bicubic_kernel

__all__ = ["KernelEstimate", "SCALES"]

log = logging.getLogger(__name__)

SCALES = (2, 4)  # the SR factors kernels are estimated for


@dataclass(frozen=True)
class KernelEstimate:
    """A scene's SR kernel, or the bicubic kernel with the reason when estimation was not possible."""

    kernel: np.ndarray  # (k, k) float64, sum 1: the ×scale SR kernel (correlate, keep every scale-th pixel)
    kernel_x2: np.ndarray  # (13, 13) float64, sum 1: KernelGAN's ×2 kernel (bicubic's on fallback)
    scale: int  # SR factor the kernel is for (2 or 4)
    fallback_reason: str | None = None  # why bicubic is used instead, None when estimated
    iterations: int = 0  # steps run (fewer than configured when stopped early)
    seconds: float = 0.0  # wall time of the estimate
    spec: str | None = None  # the operator as a degradation spec (learned: aniso:… or bicubic); None: the kernel
    verdict: str | None = None  # learned: "estimated" or "no extra blur"; None for the other estimators
    covariance: np.ndarray | None = None  # learned: the blur beyond bicubic as read, (row, col) HR px² (spec: a share of it)

    @property
    def fallback(self) -> bool:
        """True when this is the bicubic fallback, not an estimate."""
        return self.fallback_reason is not None

    def degradation(self) -> Degradation:
        """The operator A' for this scene: ``estimate`` resolved to the kernel, or plain bicubic."""
        if self.fallback:
            return parse_degradation("bicubic", self.scale)
        if self.spec is not None:
            return parse_degradation(self.spec, self.scale)
        return parse_degradation("estimate", self.scale).with_kernel(torch.from_numpy(self.kernel))


def _as_frames(frames) -> torch.Tensor:
    """A (3, H, W) tensor, a (T, 3, H, W) tensor, or a sequence of (3, H, W) tensors/Frames -> (T, 3, H, W)."""
    if torch.is_tensor(frames):
        t = frames[None] if frames.ndim == 3 else frames
    else:
        items = [f.rgb if hasattr(f, "rgb") else torch.as_tensor(f) for f in frames]
        if not items:
            raise ConfigError("Kernel estimation needs at least one frame, got none.")
        if len({tuple(f.shape) for f in items}) != 1:
            raise ConfigError("Kernel estimation needs frames of one size; the scene's frames differ in size.")
        t = torch.stack(items)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ConfigError(f"Kernel estimation needs RGB frames (T, 3, H, W), got shape {tuple(t.shape)}.")
    return t.detach().float().cpu()


def _pick(frames: torch.Tensor, n: int) -> torch.Tensor:
    """At most ``n`` frames, evenly spaced over the scene."""
    if frames.shape[0] <= n:
        return frames
    idx = np.linspace(0, frames.shape[0] - 1, n).round().astype(int)
    return frames[idx]


def _gradient_map(gray: torch.Tensor) -> torch.Tensor:
    """(H, W) gradient magnitude, clipped at its 97th percentile so that a few edges do not rule."""
    gy, gx = torch.gradient(gray)
    mag = torch.sqrt(gx**2 + gy**2)
    cap = torch.quantile(mag.flatten()[:: max(1, mag.numel() // 1_000_000)], 0.97)
    return mag.clamp(max=float(cap))


def _check_scale(scale) -> int:
    if scale not in SCALES and not (isinstance(scale, float) and scale.is_integer() and int(scale) in SCALES):
        raise ConfigError(f"KernelGAN estimates kernels for scale 2 or 4, got {scale!r}.")
    return int(scale)


def _finish(k2: np.ndarray, scale: int, **kw) -> KernelEstimate:
    if scale == 2:
        k = k2
    else:
        big = compose_x4(k2).numpy()  # (3k - 2, 3k - 2); its outer ring holds almost nothing
        c = k2.shape[0] // 2
        k = big[c:-c, c:-c]
        k = k / k.sum()
    return KernelEstimate(kernel=k, kernel_x2=k2, scale=scale, **kw)


FALLBACK_MESSAGE = "Kernel estimation falls back to bicubic: %s"


def too_small(w: int, h: int, need: int, than: str) -> str:
    """The fallback reason for frames of ``w``×``h`` below ``need`` px, naming the short side(s); ``than`` ends the sentence."""
    short = [f"{name} ({size} px)" for name, size in (("width", w), ("height", h)) if size < need]
    verb = "are" if len(short) > 1 else "is"
    return f"the frames' {' and '.join(short)} {verb} smaller than {than} (the frames are {w}x{h})"


def _fallback(scale: int, reason: str, seconds: float = 0.0, iterations: int = 0) -> KernelEstimate:
    log.warning(FALLBACK_MESSAGE, reason)
    k = bicubic_kernel(scale)
    return KernelEstimate(
        kernel=k, kernel_x2=bicubic_kernel(2), scale=scale, fallback_reason=reason, iterations=iterations, seconds=seconds
    )
