"""Kernel math shared by the estimators, the benchmarks and the CLI: no estimator in here.

Moments (:func:`centre_of_mass`, :func:`kernel_covariance`, :func:`kernel_orientation`),
clean-up (:func:`postprocess_kernel`), the bicubic reference kernel (:func:`bicubic_kernel`),
comparison (:func:`kernel_error`) and a picture of a kernel (:func:`kernel_image`).

Kernel convention: a kernel is the whole SR kernel in the KernelGAN/DIV2KRK sense —
correlate, then keep every s-th pixel — and its centre of mass sits at
``anchor + (s - 1) / 2`` (:func:`~vsr_pipeline.degrade.kernels.stride_offset`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vsr_pipeline.degrade.kernels import normalize_kernel, stride_offset
from vsr_pipeline.degrade.resize import resize_matrix

__all__ = [
    "bicubic_kernel",
    "centre_of_mass",
    "kernel_covariance",
    "kernel_error",
    "kernel_image",
    "kernel_orientation",
    "postprocess_kernel",
]


def centre_of_mass(k: torch.Tensor) -> torch.Tensor:
    """(row, col) centre of mass of a (kh, kw) kernel, in pixel indices (differentiable)."""
    rows = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    cols = torch.arange(k.shape[1], dtype=k.dtype, device=k.device)
    total = k.sum()
    return torch.stack(((k.sum(1) * rows).sum() / total, (k.sum(0) * cols).sum() / total))


def kernel_covariance(k: np.ndarray | torch.Tensor) -> np.ndarray:
    """The 2×2 covariance (px²) of a kernel's (non-negative) mass about its centre of mass; (row, col) order."""
    k = np.clip(np.asarray(torch.as_tensor(k).detach().cpu().double().numpy()), 0.0, None)
    k = k / k.sum()
    rows, cols = np.mgrid[0 : k.shape[0], 0 : k.shape[1]].astype(np.float64)
    r0, c0 = (k * rows).sum(), (k * cols).sum()
    dr, dc = rows - r0, cols - c0
    return np.array([[(k * dr * dr).sum(), (k * dr * dc).sum()], [(k * dr * dc).sum(), (k * dc * dc).sum()]])


# --- kernels: post-processing, bicubic, comparison ---------------------------------------------
def _shift(k: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift a 2-D array by a sub-pixel amount (bilinear, zeros outside)."""
    from scipy.ndimage import shift

    return shift(k, (dy, dx), order=1, mode="constant", cval=0.0)


def postprocess_kernel(k: np.ndarray | torch.Tensor, scale: int = 2, keep_largest: int = 40) -> np.ndarray:
    """Clean up a raw estimate: drop negligible taps, normalise, centre for stride ``scale``.

    Taps below 0.75 × the ``keep_largest``-th largest value are set to zero (that value is
    subtracted from the rest), as KernelGAN does; the centre of mass is then moved to
    ``anchor + (scale - 1) / 2``. Returns a float64 (kh, kw) array summing to one.
    """
    k = np.asarray(torch.as_tensor(k).detach().cpu().double().numpy())
    flat = np.sort(k.ravel())
    n = min(keep_largest, flat.size - 1)
    floor = 0.75 * flat[-n - 1]
    k = np.clip(k - floor, 0.0, None)
    if k.sum() <= 0:
        raise ValueError("the kernel has no positive mass")
    k = k / k.sum()
    want = np.array(k.shape) // 2 + stride_offset(scale)
    for _ in range(4):  # mass shifted off the canvas moves the centre again: repeat until it sits
        com = centre_of_mass(torch.from_numpy(k)).numpy()
        if np.abs(want - com).max() < 1e-3:
            break
        k = np.clip(_shift(k, *(want - com)), 0.0, None)
        k = k / k.sum()
    return k


def bicubic_kernel(scale: int) -> np.ndarray:
    """MATLAB's antialiased bicubic ×``scale`` downscaling as a 2-D stride SR kernel (odd size, sum 1).

    Correlating with it and keeping every ``scale``-th pixel equals ``imresize(x, 1/scale)``
    away from the borders; its centre of mass is at ``anchor + (scale - 1) / 2``.
    """
    s = int(scale)
    n = 16 * s
    row = resize_matrix(n, n // s, 1.0 / s)[n // (2 * s)].numpy()  # (n,) weights of one output pixel
    j = n // (2 * s)
    nz = np.nonzero(np.abs(row) > 1e-12)[0]
    reach = int(max(s * j - nz.min(), nz.max() - s * j))
    taps = np.zeros(2 * reach + 1)
    for i in nz:
        taps[i - s * j + reach] = row[i]
    k = np.outer(taps, taps)
    return k / k.sum()


def _centred(k: np.ndarray, size: int) -> np.ndarray:
    """Centre of mass moved to the middle of a (size, size) canvas (float64, sum 1)."""
    canvas = np.zeros((size, size))
    kh, kw = k.shape
    oy, ox = (size - kh) // 2, (size - kw) // 2
    canvas[oy : oy + kh, ox : ox + kw] = k
    com = centre_of_mass(torch.from_numpy(canvas)).numpy()
    out = _shift(canvas, (size - 1) / 2 - com[0], (size - 1) / 2 - com[1])
    return out / out.sum()


def kernel_error(estimate: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> float:
    """Relative L2 error ||k̂ - k|| / ||k|| after centring both on a common canvas."""
    a = normalize_kernel(torch.as_tensor(np.asarray(estimate))).numpy()
    b = normalize_kernel(torch.as_tensor(np.asarray(truth))).numpy()
    size = max(a.shape + b.shape) + 4
    ca, cb = _centred(a, size), _centred(b, size)
    return float(np.linalg.norm(ca - cb) / np.linalg.norm(cb))


def kernel_orientation(k: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """(theta, elongation) of a kernel's second moments: theta in [0, π) from +x towards +y.

    ``elongation`` is the ratio of the larger to the smaller covariance eigenvalue (1 = round).
    """
    k = np.clip(np.asarray(torch.as_tensor(np.asarray(k)).double()), 0.0, None)
    k = k / k.sum()
    yy, xx = np.mgrid[0 : k.shape[0], 0 : k.shape[1]].astype(np.float64)
    my, mx = (k * yy).sum(), (k * xx).sum()
    cxx = (k * (xx - mx) ** 2).sum()
    cyy = (k * (yy - my) ** 2).sum()
    cxy = (k * (xx - mx) * (yy - my)).sum()
    theta = 0.5 * math.atan2(2 * cxy, cxx - cyy) % math.pi
    tr, det = cxx + cyy, cxx * cyy - cxy**2
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    lo = max(tr / 2 - disc, 1e-12)
    return theta, (tr / 2 + disc) / lo


def kernel_image(k: np.ndarray | torch.Tensor, cell: int = 12, vmax: float | None = None) -> np.ndarray:
    """Render a kernel as an (kh·cell, kw·cell, 3) uint8 RGB picture (viridis, 0 to ``vmax``).

    ``vmax`` defaults to the kernel's largest value; give the same one to compare kernels.
    """
    from matplotlib import colormaps

    a = np.asarray(torch.as_tensor(np.asarray(k)).double())
    top = float(a.max()) if vmax is None else float(vmax)
    norm = np.clip(a / top, 0.0, 1.0) if top > 0 else np.zeros_like(a)
    rgb = (colormaps["viridis"](norm)[..., :3] * 255 + 0.5).astype(np.uint8)  # (kh, kw, 3)
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
