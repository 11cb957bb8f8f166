"""The ncnn layers without weights: routing, cropping, resizing, pooling, element-wise maths."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.ncnn.common import NcnnLayer, dims, unsupported
from vsr_pipeline.models.ncnn.param import LayerSpec

WHOLE = -233  # ncnn's "unset / whole axis" marker in Crop, Pooling and Scale parameters


class Input(NcnnLayer):
    """The graph input; its shape parameters are a hint ncnn itself ignores."""

    def forward(self, x: Tensor) -> tuple[Tensor]:
        return (x,)


class Split(NcnnLayer):
    """Hands the same blob to several consumers."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.count = len(spec.tops)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,) * self.count


class Concat(NcnnLayer):
    """Joins blobs along ncnn axis ``0=axis`` (0 is channels for a 3-D blob)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.axis = spec.int(0, 0)

    def forward(self, *xs: Tensor) -> tuple[Tensor]:
        axis = self.axis + dims(xs[0]) if self.axis < 0 else self.axis
        return (torch.cat(xs, dim=axis + 1),)


class Eltwise(NcnnLayer):
    """Element-wise product, (weighted) sum or maximum of same-shaped blobs."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.op = spec.int(0, 0)
        if self.op not in (0, 1, 2):
            raise unsupported(path, spec, f"op_type {self.op}")
        self.coeffs = [float(c) for c in spec.array(1)]
        if self.op == 1 and self.coeffs and len(self.coeffs) != len(spec.bottoms):
            raise unsupported(path, spec, f"{len(self.coeffs)} coefficients for {len(spec.bottoms)} inputs")

    def forward(self, *xs: Tensor) -> tuple[Tensor]:
        if self.op == 0:
            out = xs[0]
            for x in xs[1:]:
                out = out * x
        elif self.op == 2:
            out = xs[0]
            for x in xs[1:]:
                out = torch.maximum(out, x)
        elif self.coeffs:
            out = xs[0] * self.coeffs[0]
            for c, x in zip(self.coeffs[1:], xs[1:]):
                out = out + x * c
        else:
            out = xs[0]
            for x in xs[1:]:
                out = out + x
        return (out,)


_BINARY = {
    0: lambda a, b: a + b,
    1: lambda a, b: a - b,
    2: lambda a, b: a * b,
    3: lambda a, b: a / b,
    4: torch.maximum,
    5: torch.minimum,
    6: torch.pow,
    7: lambda a, b: b - a,
    8: lambda a, b: b / a,
    9: lambda a, b: torch.pow(b, a),
    10: torch.atan2,
    11: lambda a, b: torch.atan2(b, a),
}


def _expand(small: Tensor, big: Tensor) -> Tensor:
    """ncnn's rank broadcasting: reshape the lower-rank blob so numpy-style broadcasting applies.

    A 1-D blob whose length equals the other's outermost size (channels of a 3-D blob, rows of
    a 2-D one) runs along that axis, otherwise along the width; a 2-D ``(h, w)`` blob against
    a 3-D one becomes ``(h, w, 1)``.
    """
    n = small.shape[0]
    if dims(small) == 1:
        if small.shape[1] == big.shape[1]:
            return small.view(n, -1, *([1] * (dims(big) - 1)))
        return small.view(n, *([1] * (dims(big) - 1)), -1)
    return small.unsqueeze(-1)  # 2-D against 3-D


class BinaryOp(NcnnLayer):
    """``op(a, b)`` with ncnn's broadcasting, or ``op(a, scalar)`` when ``1=with_scalar``."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.op = spec.int(0, 0)
        if self.op not in _BINARY:
            raise unsupported(path, spec, f"op_type {self.op}")
        self.with_scalar = bool(spec.int(1, 0))
        self.scalar = spec.float(2, 0.0)

    def forward(self, a: Tensor, *rest: Tensor) -> tuple[Tensor]:
        fn = _BINARY[self.op]
        if self.with_scalar:
            return (fn(a, torch.full_like(a, self.scalar)),)
        b = rest[0]
        if dims(a) < dims(b):
            a = _expand(a, b)
        elif dims(b) < dims(a):
            b = _expand(b, a)
        return (fn(a, b),)


def _mat_size(shape: tuple[int, ...], name: str) -> int:
    """An ncnn Mat's ``w``, ``h`` or ``c`` for a blob shape; axes a Mat lacks are 1."""
    index = {"w": -1, "h": -2, "c": -3}[name]
    return shape[index] if len(shape) >= -index else 1


class Crop(NcnnLayer):
    """Cuts a window out of a blob: numpy-style ``starts/ends/axes``, offsets plus sizes,
    or offsets plus the shape of a second (reference) blob."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        if any(k in spec.params for k in (19, 20, 21)):
            raise unsupported(path, spec, "expression parameters")
        self.offsets = {"w": spec.int(0, 0), "h": spec.int(1, 0), "c": spec.int(2, 0)}
        self.sizes = {"w": spec.int(3, 0), "h": spec.int(4, 0), "c": spec.int(5, 0)}
        self.tails = {"w": spec.int(6, 0), "h": spec.int(7, 0), "c": spec.int(8, 0)}
        self.starts = [int(v) for v in spec.array(9)]
        self.ends = [int(v) for v in spec.array(10)]
        self.axes = [int(v) for v in spec.array(11)]
        self.reference = len(spec.bottoms) == 2
        if self.reference and self.offsets["w"] == WHOLE:
            raise unsupported(path, spec, "a reference blob holding the crop window")
        self.path, self.name = path, spec.name

    def _numpy_window(self, shape: tuple[int, ...]) -> list[slice]:
        """``starts``/``ends`` per axis; negative counts from the end, -233 is the whole axis."""
        window = [slice(0, n) for n in shape]
        axes = self.axes or list(range(len(shape)))
        for axis, start, end in zip(axes, self.starts, self.ends):
            axis = axis + len(shape) if axis < 0 else axis
            n = shape[axis]
            start = 0 if start == WHOLE else start
            end = n if end == WHOLE else end
            begin = start if start >= 0 else n + start
            stop = min(n, end if end > 0 else n + end)
            window[axis] = slice(begin, stop)
        return window

    def _offset_window(self, shape: tuple[int, ...], ref: tuple[int, ...] | None) -> list[slice]:
        """Offsets plus the reference's size, or plus ``outw/outh/outc`` less the tail offsets
        (ncnn's defaults of 0 really mean a size of 0; converters write -233 for "the rest")."""
        window = []
        for name, n in zip(("c", "h", "w")[-len(shape) :], shape):
            begin = self.offsets[name]
            if ref is None:
                size = n - begin - self.tails[name]
                if self.sizes[name] != WHOLE:
                    size = min(self.sizes[name], size)
            elif name == "c" and len(ref) != 3:
                size = n  # a reference without channels keeps them all
            else:
                size = _mat_size(ref, name)
            window.append(slice(begin, begin + size))
        return window

    def forward(self, x: Tensor, *ref: Tensor) -> tuple[Tensor]:
        shape = tuple(x.shape[1:])
        if self.starts and self.ends:
            window = self._numpy_window(shape)
        else:
            window = self._offset_window(shape, tuple(ref[0].shape[1:]) if self.reference else None)
        if any(w.start < 0 or w.stop > n or w.stop < w.start for w, n in zip(window, shape)):
            # ncnn would read outside the blob: the input size does not suit the graph
            box = ", ".join(f"{w.start}:{w.stop}" for w in window)
            raise ModelError(
                f"ncnn graph '{self.path}' cannot crop [{box}] out of a {tuple(shape)} blob in layer "
                f"'{self.name}'; the input size does not suit this graph."
            )
        return (x[(slice(None), *window)],)
