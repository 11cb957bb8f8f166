"""RGB pixel formats read and written exactly: the samples as they are, only scaled by the bit depth.

Packed (``rgb24``, ``bgr0``, ``rgb48le``, …) and planar (``gbrp``, ``gbrp10le``, …) RGB
frames need no colour matrix; going through swscale (to ``rgb48le``) would dither and
shift them by up to a level. :func:`unpack` turns a frame's planes into RGB float in
[0, 1] (value / (2^bits − 1)); :func:`pack` is its exact inverse for the writer (rounded).
"""

from __future__ import annotations

import numpy as np
import torch

# packed formats: name -> (channel letters in memory order, bits per sample)
_PACKED: dict[str, tuple[str, int]] = {
    "rgb24": ("RGB", 8), "bgr24": ("BGR", 8),
    "rgba": ("RGBA", 8), "bgra": ("BGRA", 8), "argb": ("ARGB", 8), "abgr": ("ABGR", 8),
    "rgb0": ("RGB0", 8), "bgr0": ("BGR0", 8), "0rgb": ("0RGB", 8), "0bgr": ("0BGR", 8),
    "rgb48le": ("RGB", 16), "bgr48le": ("BGR", 16), "rgba64le": ("RGBA", 16), "bgra64le": ("BGRA", 16),
}
# planar formats: name -> bits per sample; planes are G, B, R (and A)
_PLANAR: dict[str, int] = {
    "gbrp": 8, "gbrp9le": 9, "gbrp10le": 10, "gbrp12le": 12, "gbrp14le": 14, "gbrp16le": 16,
    "gbrap": 8, "gbrap10le": 10, "gbrap12le": 12, "gbrap14le": 14, "gbrap16le": 16,
}
EXACT_RGB = frozenset(_PACKED) | frozenset(_PLANAR)


def is_exact_rgb(pix_fmt: str) -> bool:
    """True when :func:`unpack`/:func:`pack` handle ``pix_fmt``."""
    return pix_fmt in EXACT_RGB


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of an exact RGB format."""
    return _PACKED[pix_fmt][1] if pix_fmt in _PACKED else _PLANAR[pix_fmt]


def _plane(plane, dtype) -> np.ndarray:
    """A plane's samples as (height, line_size / itemsize)."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // item)


def unpack(frame) -> torch.Tensor:
    """A decoded ``av.VideoFrame`` of an exact RGB format -> RGB float32 (3, H, W) in [0, 1]."""
    name = frame.format.name
    h, w = frame.height, frame.width
    if name in _PACKED:
        order, bits = _PACKED[name]
        dtype = np.uint8 if bits == 8 else np.dtype("<u2")
        n = len(order)
        arr = _plane(frame.planes[0], dtype)[:, : w * n].reshape(h, w, n)
        rgb = np.stack([arr[..., order.index(c)] for c in "RGB"])
    else:
        bits = _PLANAR[name]
        dtype = np.uint8 if bits == 8 else np.dtype("<u2")
        g, b, r = (_plane(frame.planes[i], dtype)[:, :w] for i in range(3))
        rgb = np.stack([r, g, b])
    scale = float((1 << bits) - 1)
    return torch.from_numpy(rgb.astype(np.float32)) / scale


def pack(rgb: torch.Tensor, pix_fmt: str) -> list[np.ndarray]:
    """RGB float (3, H, W) in [0, 1] -> the planes of ``pix_fmt`` (rounded to its bit depth), for the writer."""
    bits = bit_depth(pix_fmt)
    maxval = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    q = (rgb.float().clamp(0, 1) * maxval).round_().cpu().numpy().astype(dtype)  # (3, H, W)
    r, g, b = q
    if pix_fmt in _PLANAR:
        planes = [g, b, r]
        if pix_fmt.startswith("gbrap"):
            planes.append(np.full_like(g, maxval))
        return [np.ascontiguousarray(p) for p in planes]
    order, _ = _PACKED[pix_fmt]
    full = np.full_like(r, maxval)
    chans = {"R": r, "G": g, "B": b, "A": full, "0": full}
    h, w = r.shape
    packed = np.stack([chans[c] for c in order], axis=-1).reshape(h, w * len(order))
    return [np.ascontiguousarray(packed)]
