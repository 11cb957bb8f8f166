"""The ncnn layers that change a blob's spatial size: Interp, Pooling and PixelShuffle."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vsr_pipeline.models.ncnn.common import NcnnLayer, dims, unsupported
from vsr_pipeline.models.ncnn.param import LayerSpec

CUBIC_A = np.float32(-0.75)  # ncnn's (and OpenCV's) bicubic kernel parameter


def _source_coords(size: int, out: int, align_corner: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer source index and float32 fraction of every output sample, as ncnn computes them."""
    if align_corner:
        scale = (size - 1) / (out - 1) if out > 1 else 0.0
        fx = (np.arange(out, dtype=np.float64) * scale).astype(np.float32)
    else:
        scale = size / out
        fx = ((np.arange(out, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    return sx, fx - sx.astype(np.float32)


def _linear_matrix(size: int, out: int, align_corner: bool) -> np.ndarray:
    """(out, size) matrix of ncnn's bilinear weights along one axis (edges clamp)."""
    sx, fx = _source_coords(size, out, align_corner)
    fx = np.where(sx < 0, np.float32(0), fx)
    sx = np.maximum(sx, 0)
    high = sx >= size - 1
    sx = np.where(high, size - 2, sx)
    fx = np.where(high, np.float32(1), fx)
    matrix = np.zeros((out, size), dtype=np.float32)
    rows = np.arange(out)
    np.add.at(matrix, (rows, np.clip(sx, 0, size - 1)), 1 - fx)
    np.add.at(matrix, (rows, np.clip(sx + 1, 0, size - 1)), fx)
    return matrix


def _cubic_matrix(size: int, out: int, align_corner: bool) -> np.ndarray:
    """(out, size) matrix of ncnn's bicubic weights along one axis; taps beyond the border
    land on the edge pixel, which is what ncnn's coefficient shuffling amounts to."""
    sx, fx = _source_coords(size, out, align_corner)
    a = CUBIC_A
    f0, f1, f2 = fx + 1, fx, 1 - fx
    c0 = a * f0 * f0 * f0 - 5 * a * f0 * f0 + 8 * a * f0 - 4 * a
    c1 = (a + 2) * f1 * f1 * f1 - (a + 3) * f1 * f1 + 1
    c2 = (a + 2) * f2 * f2 * f2 - (a + 3) * f2 * f2 + 1
    c3 = 1 - c0 - c1 - c2
    matrix = np.zeros((out, size), dtype=np.float32)
    rows = np.arange(out)
    for tap, coeff in zip(range(-1, 3), (c0, c1, c2, c3)):
        np.add.at(matrix, (rows, np.clip(sx + tap, 0, size - 1)), coeff)
    return matrix


class Interp(NcnnLayer):
    """Resize of a 3-D blob by ``1=height_scale 2=width_scale`` or ``3=output_height
    4=output_width`` (or to a second blob's size), nearest, bilinear or bicubic."""

    MODES: ClassVar[dict[int, str]] = {1: "nearest", 2: "bilinear", 3: "bicubic"}

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.mode = spec.int(0, 0)
        if self.mode not in self.MODES:
            raise unsupported(path, spec, f"resize_type {self.mode}")
        if 9 in spec.params:
            raise unsupported(path, spec, "a size expression")
        self.height_scale = spec.float(1, 1.0)
        self.width_scale = spec.float(2, 1.0)
        self.output_height = spec.int(3, 0)
        self.output_width = spec.int(4, 0)
        self.dynamic = bool(spec.int(5, 0))
        self.align_corner = bool(spec.int(6, 0))
        self.path, self.spec = path, spec

    def _out_size(self, h: int, w: int, ref: tuple[Tensor, ...]) -> tuple[int, int]:
        if self.dynamic:
            return ref[0].shape[-2], ref[0].shape[-1]
        if self.output_width and self.output_height:
            return self.output_height, self.output_width
        return int(h * np.float32(self.height_scale)), int(w * np.float32(self.width_scale))

    def _nearest_index(self, size: int, out: int, factor: float, by_size: bool) -> Tensor:
        step = np.float32(size) / np.float32(out) if by_size else np.float32(1) / np.float32(factor)
        index = np.minimum((np.arange(out, dtype=np.float32) * step).astype(np.int64), size - 1)
        return torch.from_numpy(index)

    def forward(self, x: Tensor, *ref: Tensor) -> tuple[Tensor]:
        if dims(x) != 3:
            raise unsupported(self.path, self.spec, f"a {dims(x)}-D input blob")
        h, w = x.shape[-2:]
        oh, ow = self._out_size(h, w, ref)
        if (oh, ow) == (h, w):
            return (x,)
        if self.mode == 1:
            by_size = self.dynamic or bool(self.output_width)
            rows = self._nearest_index(h, oh, self.height_scale, by_size).to(x.device)
            cols = self._nearest_index(w, ow, self.width_scale, by_size).to(x.device)
            return (x.index_select(-2, rows).index_select(-1, cols),)
        make = _linear_matrix if self.mode == 2 else _cubic_matrix
        my = torch.from_numpy(make(h, oh, self.align_corner)).to(x)
        mx = torch.from_numpy(make(w, ow, self.align_corner)).to(x)
        return (torch.einsum("oh,bchw,pw->bcop", my, x, mx),)


class Pooling(NcnnLayer):
    """Max or average pooling; global pooling turns a 3-D blob into a 1-D one of channels."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.type = spec.int(0, 0)
        if self.type not in (0, 1):
            raise unsupported(path, spec, f"pooling_type {self.type}")
        self.global_pooling = bool(spec.int(4, 0))
        if spec.int(7, 0):
            raise unsupported(path, spec, "adaptive pooling")
        self.kw, self.kh = spec.pair(1, 0)
        self.sw, self.sh = spec.pair(2, 1)
        self.pad_left, self.pad_top, self.pad_right, self.pad_bottom = spec.pads(3)
        self.pad_mode = spec.int(5, 0)
        if self.pad_mode not in (0, 1, 2, 3):
            raise unsupported(path, spec, f"pad_mode {self.pad_mode}")
        self.count_include_pad = bool(spec.int(6, 0))
        if not self.global_pooling and (self.kw <= 0 or self.kh <= 0):
            raise unsupported(path, spec, f"kernel {self.kw}×{self.kh}")

    def _pads(self, h: int, w: int) -> tuple[int, int, int, int, int, int]:
        """(top, bottom, left, right) of the bordered blob, plus the tail pads of full padding."""
        if self.pad_mode in (2, 3):
            wpad = self.kw + (w - 1) // self.sw * self.sw - w
            hpad = self.kh + (h - 1) // self.sh * self.sh - h
            wpad, hpad = max(wpad, 0), max(hpad, 0)
            if self.pad_mode == 2:
                return hpad // 2, hpad - hpad // 2, wpad // 2, wpad - wpad // 2, 0, 0
            return hpad - hpad // 2, hpad // 2, wpad - wpad // 2, wpad // 2, 0, 0
        htail = wtail = 0
        if self.pad_mode == 0:
            wrest = (w + self.pad_left + self.pad_right - self.kw) % self.sw
            hrest = (h + self.pad_top + self.pad_bottom - self.kh) % self.sh
            wtail = self.sw - wrest if wrest else 0
            htail = self.sh - hrest if hrest else 0
        return (self.pad_top, self.pad_bottom + htail, self.pad_left, self.pad_right + wtail, htail, wtail)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        if self.global_pooling:
            return (x.amax(dim=(-2, -1)) if self.type == 0 else x.mean(dim=(-2, -1)),)
        h, w = x.shape[-2:]
        top, bottom, left, right, htail, wtail = self._pads(h, w)
        kernel, stride = (self.kh, self.kw), (self.sh, self.sw)
        if self.type == 0:
            padded = F.pad(x, (left, right, top, bottom), value=-torch.finfo(x.dtype).max)
            return (F.max_pool2d(padded, kernel, stride),)
        total = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), kernel, stride, divisor_override=1)
        if self.count_include_pad:
            return (total / (self.kh * self.kw),)
        # ncnn counts every tap except those on the explicit and full-padding tail borders
        mask = torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device)
        mask = F.pad(mask, (left - self.pad_left, right - self.pad_right - wtail, top - self.pad_top, bottom - self.pad_bottom - htail), value=1)
        mask = F.pad(mask, (self.pad_left, self.pad_right + wtail, self.pad_top, self.pad_bottom + htail))
        return (total / F.avg_pool2d(mask, kernel, stride, divisor_override=1),)


class PixelShuffle(NcnnLayer):
    """Depth-to-space by ``0=upscale_factor``; mode 1 takes channels in (sh, sw, c) order."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.factor = spec.int(0, 1)
        self.mode = spec.int(1, 0)
        if self.mode not in (0, 1):
            raise unsupported(path, spec, f"mode {self.mode}")

    def forward(self, x: Tensor) -> tuple[Tensor]:
        if self.mode == 0:
            return (F.pixel_shuffle(x, self.factor),)
        b, c, h, w = x.shape
        r = self.factor
        y = x.view(b, r, r, c // (r * r), h, w).permute(0, 3, 4, 1, 5, 2)
        return (y.reshape(b, c // (r * r), h * r, w * r),)
