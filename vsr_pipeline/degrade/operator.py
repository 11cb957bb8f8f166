"""The degradation operator A' = downsample ∘ blur, built from a spec string that round-trips.

Spec grammar (see docs/degradations.md)::

    spec    := body [ ",down=" ( "bicubic" | "stride" ) ]
    body    := "bicubic"
             | "gauss:sigma=S[,size=N]"
             | "aniso:l1=L1,l2=L2,theta=T[,size=N]"
             | "disk:radius=R[,size=N]"
             | "kernel:PATH"            (a 2-D .npy array)
             | "estimate"               (kernel to be estimated per clip, e.g. by KernelGAN)

Two conventions meet here, and the spec says which one applies:

* a named blur (``gauss``, ``aniso``, ``disk``) is followed by MATLAB bicubic downscaling
  (Lucas et al.): ``A'(x) = imresize(blur_k(x), 1/s)``;
* a ``kernel:`` file or an estimated kernel is the whole SR kernel in the KernelGAN/DIV2KRK
  sense: correlate, then keep every s-th pixel starting at the first one (rows and
  columns 0, s, 2s, …), ``A'(x) = (x ⋆ k)↓s``.

``,down=`` overrides the default. With ``down=stride`` a named blur is built with its
centre shifted by (s - 1)/2 pixels down and right, the shift DIV2KRK kernels carry, so that
LR pixel i still sits at HR position s·i + (s - 1)/2 as with bicubic; a ``kernel:`` file is
used exactly as stored. Blurring uses symmetric padding (edge pixel repeated:
``… b a | a b c …``, MATLAB's ``symmetric``, scipy's ``reflect``), the same border rule as
:func:`~vsr_pipeline.degrade.resize.imresize`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vsr_pipeline.degrade.kernels import (
    anisotropic_gaussian_kernel,
    disk_kernel,
    gaussian_kernel,
    load_kernel,
    normalize_kernel,
    stride_offset,
)
from vsr_pipeline.degrade.resize import apply_separable, imresize, output_size, resize_matrix
from vsr_pipeline.errors import ConfigError

__all__ = ["Degradation", "parse_degradation", "blur", "VALID_FORMS"]

VALID_FORMS = (
    "bicubic, gauss:sigma=S, aniso:l1=L1,l2=L2,theta=T, disk:radius=R, kernel:PATH.npy and estimate "
    "(named blurs also take ,size=N), each optionally followed by ,down=bicubic or ,down=stride"
)

# Required parameters of each named blur, in the order the canonical spec writes them.
_NAMED: dict[str, tuple[str, ...]] = {
    "gauss": ("sigma",),
    "aniso": ("l1", "l2", "theta"),
    "disk": ("radius",),
}
_KINDS = ("bicubic", *_NAMED, "kernel", "estimate")
_DOWNS = ("bicubic", "stride")
_DOWN_RE = re.compile(r",\s*down\s*=\s*([^,]*?)\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _mirror_index(n: int, before: int, after: int) -> torch.Tensor:
    """Indices into a length-n axis that pad it symmetrically (edge repeated), any pad width."""
    idx = torch.arange(-before, n + after)
    m = torch.remainder(idx, 2 * n)
    return torch.where(m < n, m, 2 * n - 1 - m)


def _pad_axis(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    n = x.shape[dim]
    if before <= n and after <= n:
        # Common case: one mirrored copy of the edge on each side (cheaper than a gather).
        parts = [x.narrow(dim, 0, before).flip(dim), x, x.narrow(dim, n - after, after).flip(dim)]
        return torch.cat(parts, dim=dim)
    return x.index_select(dim, _mirror_index(n, before, after).to(x.device))


def _pad_symmetric(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two axes of (..., H, W) with MATLAB ``symmetric`` borders; differentiable."""
    if top or bottom:
        x = _pad_axis(x, x.ndim - 2, top, bottom)
    if left or right:
        x = _pad_axis(x, x.ndim - 1, left, right)
    return x


def _blur_matrix(n: int, taps: torch.Tensor) -> torch.Tensor:
    """(n, n) float64 matrix of 1-D correlation with ``taps`` (anchor len // 2), symmetric borders."""
    length = taps.shape[0]
    idx = _mirror_index(n, length // 2, length - 1 - length // 2)  # (n + length - 1,)
    cols = idx.unfold(0, length, 1)  # (n, length): input index of each tap for each output
    rows = torch.arange(n)[:, None].expand(n, length)
    mat = torch.zeros(n, n, dtype=torch.float64)
    mat.index_put_((rows.reshape(-1), cols.reshape(-1)), taps.to(torch.float64).repeat(n), accumulate=True)
    return mat


def _separable_factors(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(column, row) 1-D factors with ``k == outer(col, row)`` if ``k`` has rank one, else None."""
    u, sv, vh = torch.linalg.svd(k)
    if sv.numel() > 1 and sv[1] > 1e-12 * sv[0]:
        return None
    col, row = u[:, 0] * sv[0].sqrt(), vh[0] * sv[0].sqrt()
    if col.sum() < 0:
        col, row = -col, -row
    if (torch.outer(col, row) - k).abs().max() > 1e-12 * k.abs().max():
        return None
    return col, row


def blur(x: torch.Tensor, kernel: torch.Tensor, *, stride: int = 1) -> torch.Tensor:
    """Correlate every channel of ``x`` with ``kernel``, keeping every ``stride``-th pixel.

    Args:
        x: (N, C, H, W) float tensor.
        kernel: (kh, kw) tensor, anchored at (kh // 2, kw // 2); cast to ``x``'s dtype and
            device. Gradients flow to both ``x`` and ``kernel``.
        stride: keep rows/columns 0, stride, 2·stride, …

    Returns:
        (N, C, ceil(H / stride), ceil(W / stride)); borders are padded symmetrically.
    """
    if x.ndim != 4:
        raise ValueError(f"blur expects (N, C, H, W), got shape {tuple(x.shape)}")
    kh, kw = kernel.shape
    c = x.shape[1]
    xp = _pad_symmetric(x, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
    weight = kernel.to(dtype=x.dtype, device=x.device).expand(c, 1, kh, kw)  # (C, 1, kh, kw)
    return F.conv2d(xp, weight, stride=stride, groups=c)


def _fmt(key: str, value: float) -> str:
    return str(int(value)) if key == "size" else repr(float(value))


def _bad_spec(spec: str, detail: str) -> ConfigError:
    return ConfigError(f"Invalid degradation spec '{spec}' ({detail}); valid forms are {VALID_FORMS}.")


@dataclass(frozen=True)
class Degradation:
    """A' = downsample ∘ blur: a differentiable, batched operator HR -> LR.

    Build it with :func:`parse_degradation`; ``Degradation(kind, scale, params, path, down)``
    works too and is validated the same way.
    """

    kind: str  # one of bicubic, gauss, aniso, disk, kernel, estimate
    scale: float  # SR factor s > 1: LR = HR downscaled by s
    params: tuple[tuple[str, float], ...] = ()  # named-blur parameters, canonical order
    path: str | None = None  # the .npy file of a kernel: spec
    down: str | None = None  # bicubic | stride; None picks the kind's default
    _kernel: torch.Tensor | None = field(default=None, compare=False, repr=False)  # (kh, kw) float64
    _factors: tuple | None = field(default=None, init=False, compare=False, repr=False)  # rank-1 split of the kernel
    _cache: dict = field(default_factory=dict, init=False, compare=False, repr=False)  # tensors per device/dtype/size

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise _bad_spec(self.kind, f"unknown kind '{self.kind}'")
        scale = float(self.scale)
        if not (math.isfinite(scale) and scale > 1.0):
            raise ConfigError(f"The degradation scale must be a number greater than 1, got {self.scale!r}.")
        object.__setattr__(self, "scale", scale)
        down = self.down
        if down is None:
            down = "stride" if self.kind in ("kernel", "estimate") else "bicubic"
        if down not in _DOWNS:
            raise _bad_spec(f"down={down}", f"down must be bicubic or stride, not '{down}'")
        object.__setattr__(self, "down", down)
        if self.kind == "bicubic" and down == "stride":
            raise _bad_spec("bicubic,down=stride", "plain bicubic has no kernel to sample with a stride")
        if down == "stride" and not scale.is_integer():
            raise ConfigError(
                f"The degradation '{self.spec}' keeps every s-th pixel, which needs an integer scale, "
                f"got {scale!r}; use down=bicubic for a non-integer scale."
            )
        if self._kernel is None:
            object.__setattr__(self, "_kernel", self._build_kernel())
        else:
            object.__setattr__(self, "_kernel", normalize_kernel(self._kernel))
        if self._kernel is not None and down == "bicubic":
            # A rank-one kernel (isotropic Gaussian) blurs each axis separately, so blur and
            # bicubic downscale fold into one (out, in) matrix per axis: two matmuls in all.
            object.__setattr__(self, "_factors", _separable_factors(self._kernel))

    def _build_kernel(self) -> torch.Tensor | None:
        p = dict(self.params)
        size = int(p["size"]) if "size" in p else None
        offset = stride_offset(self.scale) if self.down == "stride" else 0.0
        if self.kind == "gauss":
            return gaussian_kernel(p["sigma"], size, offset=offset)
        if self.kind == "aniso":
            return anisotropic_gaussian_kernel(p["l1"], p["l2"], p["theta"], size, offset=offset)
        if self.kind == "disk":
            return disk_kernel(p["radius"], size, offset=offset)
        if self.kind == "kernel":
            if not self.path:
                raise _bad_spec("kernel:", "the kernel: form needs a file path")
            return load_kernel(self.path)
        return None  # bicubic, or estimate before estimation

    @property
    def kernel(self) -> torch.Tensor | None:
        """The (kh, kw) float64 blur/SR kernel (a copy), or None for plain bicubic and unresolved estimate."""
        return None if self._kernel is None else self._kernel.clone()

    @property
    def spec(self) -> str:
        """The canonical spec string; ``parse_degradation(d.spec, d.scale) == d``."""
        if self.kind in _NAMED:
            body = self.kind + ":" + ",".join(f"{k}={_fmt(k, v)}" for k, v in self.params)
        elif self.kind == "kernel":
            body = f"kernel:{self.path}"
        else:
            body = self.kind
        default = "stride" if self.kind in ("kernel", "estimate") else "bicubic"
        return body if self.down == default else f"{body},down={self.down}"

    @property
    def resolved(self) -> bool:
        """False only for an ``estimate`` degradation whose kernel has not been set yet."""
        return not (self.kind == "estimate" and self._kernel is None)

    def with_kernel(self, kernel: torch.Tensor) -> Degradation:
        """Return a copy of an ``estimate`` degradation that uses ``kernel`` (kh, kw), e.g. KernelGAN's."""
        if self.kind != "estimate":
            raise ConfigError(f"Only an 'estimate' degradation takes an estimated kernel, not '{self.spec}'.")
        return dataclasses.replace(self, _kernel=torch.as_tensor(kernel).detach())

    def lr_size(self, h: int, w: int) -> tuple[int, int]:
        """The (h, w) of the LR image this operator makes from an h×w HR image."""
        if self.down == "stride":
            s = int(self.scale)
            return -(-h // s), -(-w // s)
        return output_size(h, 1.0 / self.scale), output_size(w, 1.0 / self.scale)

    def _cached(self, key: tuple, make) -> torch.Tensor:
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) > 32:  # a clip has one frame size; do not grow without bound
                self._cache.clear()
            value = self._cache[key] = make()
        return value

    def _kernel_on(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return self._cached(("kernel", device, dtype), lambda: self._kernel.to(device=device, dtype=dtype))

    def _fused_matrix(self, axis: int, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(out, n) matrix = bicubic downscale ∘ 1-D blur along ``axis`` (0 rows, 1 columns)."""

        def make() -> torch.Tensor:
            inv = 1.0 / self.scale
            resize = resize_matrix(n, output_size(n, inv), inv)  # (out, n) float64
            return (resize @ _blur_matrix(n, self._factors[axis])).to(device=device, dtype=dtype)

        return self._cached(("fused", axis, n, device, dtype), make)

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        """Degrade ``hr``: (C, H, W), (B, C, H, W) or a window batch (B, T, C, H, W) -> LR.

        Returns the same leading shape with (H, W) replaced by :meth:`lr_size`. Differentiable
        with respect to ``hr``; same dtype and device.
        """
        if not self.resolved:
            raise ConfigError(
                "The degradation 'estimate' has no kernel yet: estimate it for the clip "
                "(e.g. with KernelGAN) before applying it."
            )
        if hr.ndim < 3:
            raise ValueError(f"a degradation expects (..., C, H, W), got shape {tuple(hr.shape)}")
        lead = hr.shape[:-3]
        x = hr.reshape(-1, *hr.shape[-3:])  # (N, C, H, W)
        if self._kernel is None:
            lr = imresize(x, 1.0 / self.scale)
        elif self._factors is not None:
            mh = self._fused_matrix(0, x.shape[-2], x.device, x.dtype)
            mw = self._fused_matrix(1, x.shape[-1], x.device, x.dtype)
            lr = apply_separable(x, mh, mw)
        else:
            k = self._kernel_on(x.device, x.dtype)
            if self.down == "stride":
                lr = blur(x, k, stride=int(self.scale))
            else:
                lr = imresize(blur(x, k), 1.0 / self.scale)
        return lr.reshape(*lead, *lr.shape[-3:])

    def __str__(self) -> str:
        return self.spec


def _parse_number(spec: str, key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad_spec(spec, f"{key}={text!r} is not a number") from None
    if key == "size" and not value.is_integer():
        raise _bad_spec(spec, f"size must be an odd integer, got {text!r}")
    return value


def parse_degradation(spec: str, scale: float) -> Degradation:
    """Build the :class:`Degradation` described by ``spec`` at SR factor ``scale`` (> 1).

    Raises ``ConfigError`` for a malformed spec (the message lists the valid forms), bad
    parameter values, an unusable kernel file, scale <= 1, or a stride with a non-integer
    scale.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _bad_spec(str(spec), "it is empty")
    text = spec.strip()
    down = None
    m = _DOWN_RE.search(text)
    if m:
        down = m.group(1).lower()
        if down not in _DOWNS:
            raise _bad_spec(spec, f"down must be bicubic or stride, not '{m.group(1)}'")
        text = text[: m.start()].strip()
    name, colon, args = text.partition(":")
    name = name.strip().lower()

    if name in ("bicubic", "estimate"):
        if colon:
            raise _bad_spec(spec, f"'{name}' takes no parameters")
        return Degradation(name, scale, down=down)
    if name == "kernel":
        path = args.strip()
        if not path:
            raise _bad_spec(spec, "the kernel: form needs a file path")
        return Degradation("kernel", scale, path=path, down=down)
    if name not in _NAMED:
        raise _bad_spec(spec, f"unknown kind '{name}'")

    required = _NAMED[name]
    values: dict[str, float] = {}
    for item in args.split(",") if args.strip() else []:
        key, eq, val = item.partition("=")
        key = key.strip().lower()
        if not eq or not key or not val.strip():
            raise _bad_spec(spec, f"'{item.strip()}' is not key=value")
        if key not in required and key != "size":
            raise _bad_spec(spec, f"'{name}' has no parameter '{key}'")
        if key in values:
            raise _bad_spec(spec, f"'{key}' is given twice")
        values[key] = _parse_number(spec, key, val.strip())
    missing = [k for k in required if k not in values]
    if missing:
        raise _bad_spec(spec, f"'{name}' needs {', '.join(missing)}")
    params = tuple((k, values[k]) for k in (*required, "size") if k in values)
    return Degradation(name, scale, params=params, down=down)
