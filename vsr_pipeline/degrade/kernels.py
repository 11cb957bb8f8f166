"""Blur kernels: Gaussian, anisotropic Gaussian, out-of-focus disk, kernels from .npy files.

Every kernel here is a 2-D ``torch.float64`` tensor on the CPU, (kh, kw), normalised to sum
to one. :mod:`vsr_pipeline.degrade.operator` casts and moves it where it is used.

Conventions (shared with the operator, see docs/degradations.md):

* A kernel is applied as a *correlation* (``torch.nn.functional.conv2d``,
  ``scipy.ndimage.correlate``): output pixel (y, x) is ``sum k[i, j] * img[y + i - ay,
  x + j - ax]`` with the anchor ``(ay, ax) = (kh // 2, kw // 2)``. This is how KernelGAN and
  the DIV2KRK generator apply their kernels; for a point-symmetric kernel it is the same
  as a convolution.
* ``offset`` moves the kernel's centre away from the anchor by that many pixels, down and
  right. Strided ("keep every s-th pixel") downscaling lines up with MATLAB bicubic
  downscaling only when the kernel's centre of mass sits at ``anchor + (s - 1) / 2``; DIV2KRK
  kernels carry that shift, and :func:`stride_offset` gives it.
* Anisotropic Gaussians follow DIV2KRK / KernelGAN: the covariance is
  ``Sigma = R(theta) diag(l1, l2) R(theta)^T``, so ``l1`` and ``l2`` are the covariance's
  eigenvalues, i.e. the *variances* (px^2) along the two principal axes (standard
  deviations ``sqrt(l1)``, ``sqrt(l2)``); ``theta`` (radians) is the angle of the ``l1``
  axis measured from the +x (rightward) axis towards +y (downward, image rows), i.e.
  clockwise on screen.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from vsr_pipeline.errors import ConfigError

__all__ = [
    "gaussian_kernel",
    "anisotropic_gaussian_kernel",
    "disk_kernel",
    "load_kernel",
    "save_kernel",
    "normalize_kernel",
    "compose_x4",
    "random_kernel",
    "stride_offset",
]

# Samples per pixel side used to integrate the disk's coverage of each pixel.
_DISK_SUPERSAMPLE = 32


def stride_offset(scale: int | float) -> float:
    """Return ``(scale - 1) / 2``: the kernel shift that aligns stride-``scale`` sampling with bicubic."""
    return (float(scale) - 1.0) / 2.0


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"Kernel parameter {name} must be a positive number, got {value!r}.")
    return value


def _check_size(size: int | None, auto: int) -> int:
    if size is None:
        return auto
    if isinstance(size, float) and not size.is_integer():
        raise ConfigError(f"Kernel size must be a positive odd integer, got {size!r}.")
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"Kernel size must be a positive odd integer, got {size!r}.")
    return size


def _grid(size: int, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (y, x), each (size, size), relative to the kernel's (shifted) centre."""
    r = torch.arange(size, dtype=torch.float64) - size // 2 - offset
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return yy, xx


def normalize_kernel(k: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return ``k / k.sum()`` as a float64 (kh, kw) tensor.

    Raises ``ValueError`` when ``k`` is not 2-D, is empty, holds non-finite values, or sums
    to (numerically) zero.
    """
    t = torch.as_tensor(np.asarray(k) if isinstance(k, np.ndarray) else k).to(torch.float64).cpu()
    if t.ndim != 2:
        raise ValueError(f"a kernel must be 2-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError("the kernel is empty")
    if not torch.isfinite(t).all():
        raise ValueError("the kernel holds NaN or infinite values")
    total = t.sum()
    if abs(total.item()) <= 1e-12 * max(1.0, t.abs().sum().item()):
        raise ValueError("the kernel sums to zero, so it cannot be normalised")
    return t / total


def gaussian_kernel(sigma: float, size: int | None = None, *, offset: float = 0.0) -> torch.Tensor:
    """Isotropic Gaussian blur, (size, size) float64, sum 1.

    ``sigma`` is the standard deviation in pixels. ``size`` (odd) defaults to
    ``2 * ceil(3 * sigma + |offset|) + 1``. ``offset`` shifts the centre down and right.
    """
    sigma = _check_positive("sigma", sigma)
    size = _check_size(size, 2 * math.ceil(3 * sigma + abs(offset)) + 1)
    yy, xx = _grid(size, offset)
    return normalize_kernel(torch.exp(-(xx**2 + yy**2) / (2 * sigma**2)))


def anisotropic_gaussian_kernel(
    l1: float, l2: float, theta: float, size: int | None = None, *, offset: float = 0.0
) -> torch.Tensor:
    """Anisotropic Gaussian blur in the DIV2KRK convention, (size, size) float64, sum 1.

    ``l1``, ``l2``: covariance eigenvalues (variances, px^2) along the principal axes;
    ``theta``: angle of the ``l1`` axis from +x towards +y (radians). ``size`` (odd)
    defaults to ``2 * ceil(3 * sqrt(max(l1, l2)) + |offset|) + 1``.
    """
    l1 = _check_positive("l1", l1)
    l2 = _check_positive("l2", l2)
    theta = float(theta)
    if not math.isfinite(theta):
        raise ConfigError(f"Kernel parameter theta must be a finite number, got {theta!r}.")
    size = _check_size(size, 2 * math.ceil(3 * math.sqrt(max(l1, l2)) + abs(offset)) + 1)
    return normalize_kernel(_aniso_raw(l1, l2, theta, size, offset))


def _aniso_raw(l1: float, l2: float, theta: float, size: int, offset: float) -> torch.Tensor:
    yy, xx = _grid(size, offset)
    c, s = math.cos(theta), math.sin(theta)
    # Coordinates along the two principal axes: u along (cos, sin), v perpendicular to it.
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return torch.exp(-0.5 * (u**2 / l1 + v**2 / l2))


def disk_kernel(radius: float, size: int | None = None, *, offset: float = 0.0) -> torch.Tensor:
    """Out-of-focus (pillbox) blur of the given radius in pixels, (size, size) float64, sum 1.

    Anti-aliased: each pixel's weight is the fraction of its square covered by the disk,
    integrated on a 32×32 sub-grid. ``size`` (odd) defaults to
    ``2 * ceil(radius + |offset|) + 1``.
    """
    radius = _check_positive("radius", radius)
    size = _check_size(size, 2 * math.ceil(radius + abs(offset)) + 1)
    n = _DISK_SUPERSAMPLE
    sub = (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5  # (n,) sub-pixel centres
    yy, xx = _grid(size, offset)
    py = yy[:, :, None, None] + sub[None, None, :, None]  # (size, size, n, 1)
    px = xx[:, :, None, None] + sub[None, None, None, :]  # (size, size, 1, n)
    inside = (py**2 + px**2 <= radius**2).to(torch.float64)  # (size, size, n, n)
    return normalize_kernel(inside.mean(dim=(2, 3)))


def load_kernel(path: str | os.PathLike[str]) -> torch.Tensor:
    """Load a 2-D kernel from a ``.npy`` file and normalise it to sum 1: (kh, kw) float64.

    Raises ``ConfigError`` (one sentence naming the file) when the file is missing or
    unreadable, or the array is not 2-D, is empty, holds NaN/inf, or sums to zero.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Kernel file '{p}' does not exist; give the path of a 2-D .npy array.")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Kernel file '{p}' is not a readable .npy array ({exc}).") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise ConfigError(f"Kernel file '{p}' must hold a numeric array, got {getattr(arr, 'dtype', type(arr))}.")
    if arr.ndim != 2:
        raise ConfigError(f"Kernel file '{p}' must hold a 2-D array, got shape {arr.shape}.")
    if arr.size == 0:
        raise ConfigError(f"Kernel file '{p}' holds an empty array of shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ConfigError(f"Kernel file '{p}' holds NaN or infinite values.")
    try:
        return normalize_kernel(arr)
    except ValueError as exc:
        raise ConfigError(f"Kernel file '{p}' sums to zero, so it cannot be used as a blur kernel.") from exc


def save_kernel(kernel: torch.Tensor | np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a (kh, kw) kernel as a float64 ``.npy`` file (loadable by :func:`load_kernel`)."""
    k = normalize_kernel(kernel).numpy()
    p = Path(path)
    with open(p, "wb") as fh:  # a file handle keeps np.save from appending ".npy"
        np.save(fh, k, allow_pickle=False)
    return p


def compose_x4(k2: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Return the ×4 SR kernel equivalent to applying the ×2 SR kernel ``k2`` twice.

    Two stride-2 steps with ``k2`` (correlate, keep every 2nd pixel) equal one stride-4
    step with ``k4 = k2 * dilate2(k2)`` (full convolution of ``k2`` with itself dilated by
    two), up to the image boundary. For a (k, k) input the result is (3k - 2, 3k - 2) when k
    is odd; for even k it is zero-padded to (3k, 3k) so that the anchor convention
    (index size // 2) still holds. Float64, normalised.
    """
    k = normalize_kernel(k2)
    kh, kw = k.shape
    dil = torch.zeros(2 * kh - 1, 2 * kw - 1, dtype=torch.float64)
    dil[::2, ::2] = k
    # conv2d is a correlation; flipping one operand turns it into the full convolution.
    big = torch.nn.functional.conv2d(
        dil[None, None], k.flip(0, 1)[None, None], padding=(kh - 1, kw - 1)
    )[0, 0]  # (3kh - 2, 3kw - 2)
    # The composed anchor is 3 * (k // 2); pad the far side so that it is size // 2.
    pad_h = 2 * (3 * (kh // 2)) + 1 - big.shape[0]
    pad_w = 2 * (3 * (kw // 2)) + 1 - big.shape[1]
    big = torch.nn.functional.pad(big, (0, max(pad_w, 0), 0, max(pad_h, 0)))
    return normalize_kernel(big)


def random_kernel(
    seed: int,
    *,
    size: int = 11,
    lambda_range: tuple[float, float] = (0.6, 5.0),
    noise: float = 0.25,
    scale: int = 2,
) -> torch.Tensor:
    """A DIV2KRK-style random ×``scale`` SR kernel: (size, size) float64, sum 1, reproducible.

    An anisotropic Gaussian with ``l1, l2 ~ U(lambda_range)`` (variances, see the module
    docstring), ``theta ~ U(-pi, pi)``, multiplied pixel-wise by ``1 + U(-noise, noise)``,
    centred at ``anchor + (scale - 1) / 2`` so that stride-``scale`` sampling is aligned
    with bicubic (``scale=1`` centres it), then normalised. The same ``seed`` gives the
    same kernel on every machine (``numpy.random.default_rng``).
    """
    lo, hi = float(lambda_range[0]), float(lambda_range[1])
    _check_positive("lambda_range[0]", lo)
    if not (hi >= lo):
        raise ConfigError(f"lambda_range must be (low, high) with low <= high, got {lambda_range!r}.")
    if not (0.0 <= noise < 1.0):
        raise ConfigError(f"Kernel noise must lie in [0, 1), got {noise!r}.")
    size = _check_size(size, size)
    rng = np.random.default_rng(seed)
    l1, l2 = rng.uniform(lo, hi, size=2)
    theta = rng.uniform(-math.pi, math.pi)
    mult = 1.0 + rng.uniform(-noise, noise, size=(size, size))
    raw = _aniso_raw(float(l1), float(l2), float(theta), size, stride_offset(scale))
    return normalize_kernel(raw * torch.from_numpy(mult))
