"""MATLAB-compatible bicubic ``imresize`` for torch tensors, differentiable and batched.

MATLAB's ``imresize(I, scale)`` (default method ``bicubic``, ``Antialiasing`` on) is the
resize every SR paper uses to make its low-resolution inputs and its bicubic baseline.
Three of its details matter for exact parity and are reproduced here:

* the cubic convolution kernel with a = -0.5 (Keys), support 4;
* when downscaling (scale < 1) the kernel is stretched by 1/scale and its height scaled
  by ``scale`` (a low-pass filter, "antialiasing"), so the support becomes 4/scale;
* output pixel ``i`` (1-based) samples the input at ``u = i/scale + 0.5 (1 - 1/scale)``,
  the weights are normalised to sum to one, and indices that fall outside the image are
  mirrored with the edge pixel repeated (``... b a | a b c ... y z | z y ...``, MATLAB's
  ``symmetric`` border);
* the output size is ``ceil(scale * size)``.

A resize along one axis is a linear map, so it is stored as a dense (out, in) weight
matrix and applied as a matrix product along H and then W (or W then H, whichever costs
fewer multiply-adds). The matrices are computed once in float64 and cached per
(in size, out size, scale, antialias, device, dtype); the product is exactly
differentiable through autograd and runs at BLAS speed on CPU.

When ``scale * size`` is not an integer, MATLAB (and this module) keeps the grid anchored
at the image's top-left corner, while ``resize_right`` centres it; the two then differ by
a sub-pixel shift. They agree whenever ``scale * size`` is an integer.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["imresize", "resize_matrix", "output_size", "apply_separable"]

# A product ``scale * size`` within this distance of an integer counts as that integer, so
# that e.g. 1/3 * 12 gives 4 and not 5 because of floating-point rounding.
_SIZE_TOL = 1e-9


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


def output_size(in_size: int, scale: float) -> int:
    """Return MATLAB's output length ``ceil(scale * in_size)`` for one axis (a positive int)."""
    return max(1, math.ceil(in_size * scale - _SIZE_TOL))


@functools.lru_cache(maxsize=64)
def _matrix_f64(in_size: int, out_size: int, scale: float, antialias: bool) -> np.ndarray:
    """The (out_size, in_size) float64 resize matrix; see :func:`resize_matrix`."""
    if scale < 1.0 and antialias:
        width = 4.0 / scale

        def kernel(t: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * t)
    else:
        width = 4.0
        kernel = _cubic

    # 1-based output coordinates mapped into 1-based input coordinates, as MATLAB does.
    x = np.arange(1, out_size + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # (out, taps), 1-based
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)

    # Mirror with edge repeat: period 2n sequence 1..n, n..1 (handles kernels wider than n).
    period = 2 * in_size
    m = np.mod(idx.astype(np.int64) - 1, period)
    m = np.where(m < in_size, m, period - 1 - m)  # 0-based input index

    mat = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_size)[:, None], m.shape)
    np.add.at(mat, (rows, m), w)
    mat.setflags(write=False)
    return mat


@functools.lru_cache(maxsize=128)
def _matrix_cached(
    in_size: int, out_size: int, scale: float, antialias: bool, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    # Cached tensors outlive the caller's mode: never let them be inference tensors, or a
    # later autograd use (adaptation after plain inference) would fail.
    with torch.inference_mode(False):
        return torch.tensor(_matrix_f64(in_size, out_size, scale, antialias), dtype=dtype, device=device)


def resize_matrix(
    in_size: int,
    out_size: int,
    scale: float | None = None,
    *,
    antialias: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Return the (out_size, in_size) matrix R with ``resize(v) = R @ v`` along one axis.

    ``scale`` defaults to ``out_size / in_size`` (MATLAB's rule when only a size is given).
    The result is cached and shared: treat it as read-only.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"resize sizes must be positive, got in={in_size}, out={out_size}")
    s = float(out_size) / in_size if scale is None else float(scale)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"resize scale must be a positive finite number, got {scale!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _matrix_cached(int(in_size), int(out_size), s, bool(antialias), dev, dtype)


def _pair(value: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"scale must be a number or a pair (sh, sw), got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def imresize(
    x: torch.Tensor,
    scale: float | tuple[float, float] | None = None,
    out_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize the last two axes of ``x`` exactly as MATLAB ``imresize(x, scale, 'bicubic')``.

    Args:
        x: float tensor (..., H, W), e.g. (C, H, W), (B, C, H, W) or (B, T, C, H, W).
        scale: factor for both axes, or (scale_h, scale_w); < 1 downscales, > 1 upscales,
            non-integer values are fine. The output is (ceil(sh*H), ceil(sw*W)).
        out_shape: (H_out, W_out). If given without ``scale``, each axis uses the scale
            H_out/H and W_out/W (MATLAB's rule); if both are given, ``scale`` sets the
            kernel and sampling grid and ``out_shape`` the number of output pixels.
        antialias: stretch the kernel when downscaling (MATLAB's default, True).

    Returns:
        Tensor (..., H_out, W_out) of the same dtype and device, differentiable w.r.t. ``x``.
        Values are not clamped (bicubic can overshoot [0, 1]).
    """
    if not torch.is_tensor(x):
        raise TypeError(f"imresize expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"imresize expects a floating-point tensor, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"imresize expects a tensor (..., H, W), got shape {tuple(x.shape)}")
    if scale is None and out_shape is None:
        raise ValueError("imresize needs scale or out_shape")
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if in_h < 1 or in_w < 1:
        raise ValueError(f"imresize got an empty image of shape {tuple(x.shape)}")

    if scale is not None:
        sh, sw = _pair(scale)
        if not (sh > 0 and sw > 0 and math.isfinite(sh) and math.isfinite(sw)):
            raise ValueError(f"imresize scale must be positive and finite, got {scale!r}")
    if out_shape is not None:
        out_h, out_w = int(out_shape[0]), int(out_shape[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize out_shape must be positive, got {out_shape!r}")
    else:
        out_h, out_w = output_size(in_h, sh), output_size(in_w, sw)
    if scale is None:
        sh, sw = out_h / in_h, out_w / in_w

    resize_h = not (out_h == in_h and sh == 1.0)
    resize_w = not (out_w == in_w and sw == 1.0)
    mh = resize_matrix(in_h, out_h, sh, antialias=antialias, device=x.device, dtype=x.dtype) if resize_h else None
    mw = resize_matrix(in_w, out_w, sw, antialias=antialias, device=x.device, dtype=x.dtype) if resize_w else None
    if mh is None and mw is None:
        return x.clone()
    return apply_separable(x, mh, mw)


def apply_separable(x: torch.Tensor, mh: torch.Tensor | None, mw: torch.Tensor | None) -> torch.Tensor:
    """Return ``mh @ x @ mw.T`` over the last two axes: (..., H, W) -> (..., H', W').

    ``mh`` is (H', H) and ``mw`` (W', W), either may be None (axis left alone). The two
    products are done in whichever order costs fewer multiply-adds; differentiable.
    """
    if mh is None and mw is None:
        return x
    if mh is None:
        return torch.matmul(x, mw.transpose(0, 1))  # (..., H, W')
    if mw is None:
        return torch.matmul(mh, x)  # (..., H', W)
    in_h, in_w = x.shape[-2], x.shape[-1]
    out_h, out_w = mh.shape[0], mw.shape[0]
    cost_h_first = out_h * in_h * in_w + out_h * in_w * out_w
    cost_w_first = in_h * in_w * out_w + out_h * in_h * out_w
    if cost_h_first <= cost_w_first:
        return torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))
    return torch.matmul(mh, torch.matmul(x, mw.transpose(0, 1)))
