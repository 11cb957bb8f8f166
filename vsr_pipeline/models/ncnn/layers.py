"""The ncnn layers that carry weights, and ncnn's fused activations.

Weights become ``nn.Parameter`` so that gradients reach them (test-time adaptation tunes
them). Each constructor reads its buffers from the :class:`WeightReader` in the order ncnn's
``load_model`` does, so the reader stays aligned with the ``.bin`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.ncnn.common import NcnnLayer, dims, unsupported
from vsr_pipeline.models.ncnn.param import LayerSpec
from vsr_pipeline.models.ncnn.weights import WeightReader

SAME_UPPER = -233  # pad value meaning onnx padding=SAME_UPPER (extra pixel at the end)
SAME_LOWER = -234  # pad value meaning onnx padding=SAME_LOWER (extra pixel at the start)


class Activation(nn.Module):
    """ncnn's fused activation (param 9 = type, param 10 = its parameters)."""

    NAMES: ClassVar[dict[int, str]] = {0: "none", 1: "ReLU", 2: "LeakyReLU", 3: "Clip", 4: "Sigmoid", 5: "Mish", 6: "HardSwish"}

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        super().__init__()
        self.kind = spec.int(9, 0)
        self.args = [float(v) for v in spec.array(10)]
        needed = {2: 1, 3: 2, 6: 2}.get(self.kind, 0)
        if self.kind not in self.NAMES:
            raise unsupported(path, spec, f"fused activation type {self.kind}")
        if len(self.args) < needed:
            raise unsupported(path, spec, f"activation {self.NAMES[self.kind]} missing its parameters")

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == 1:
            return F.relu(x)
        if self.kind == 2:
            return F.leaky_relu(x, self.args[0])
        if self.kind == 3:
            return x.clamp(self.args[0], self.args[1])
        if self.kind == 4:
            return torch.sigmoid(x)
        if self.kind == 5:
            return F.mish(x)
        if self.kind == 6:
            alpha, beta = self.args[0], self.args[1]
            lower = -beta / alpha
            upper = 1.0 / alpha + lower
            return torch.where(x < lower, torch.zeros_like(x), torch.where(x > upper, x, x * (x * alpha + beta)))
        return x


def _parameter(values: np.ndarray) -> nn.Parameter:
    """A trainable float32 tensor owning a copy of ``values``."""
    return nn.Parameter(torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).copy()))


class _Kernel:
    """The kernel geometry shared by Convolution and Deconvolution."""

    def __init__(self, spec: LayerSpec, path: Path) -> None:
        self.num_output = spec.int(0, 0)
        self.kw, self.kh = spec.pair(1, 0)
        self.dw, self.dh = spec.pair(2, 1)
        self.sw, self.sh = spec.pair(3, 1)
        self.pad_left, self.pad_top, self.pad_right, self.pad_bottom = spec.pads(4)
        self.bias_term = spec.int(5, 0)
        self.weight_size = spec.int(6, 0)
        maxk = self.kw * self.kh
        if self.num_output <= 0 or maxk <= 0 or self.weight_size <= 0 or self.weight_size % (self.num_output * maxk):
            raise ModelError(
                f"ncnn graph '{path}' is malformed: layer '{spec.name}' has weight_data_size {self.weight_size}, "
                f"not a multiple of {self.num_output} outputs × {self.kw}×{self.kh} kernel."
            )
        self.num_input = self.weight_size // (self.num_output * maxk)

    def read(self, reader: WeightReader, name: str) -> tuple[np.ndarray, nn.Parameter | None]:
        """Weight (num_output, num_input, kh, kw) as ncnn stores it, and the bias if any."""
        weight = reader.tagged(self.weight_size, name).reshape(self.num_output, self.num_input, self.kh, self.kw)
        bias = _parameter(reader.raw(self.num_output, name)) if self.bias_term else None
        return weight, bias


def _same_pads(size: int, kernel: int, dilation: int, stride: int, upper: bool) -> tuple[int, int]:
    """ncnn's SAME padding of one axis: (before, after)."""
    total = max(dilation * (kernel - 1) + 1 + (size - 1) // stride * stride - size, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if upper else (large, small)


class Convolution(NcnnLayer):
    """Zero- (or ``pad_value``-) padded 2-D convolution with a fused activation."""

    def __init__(self, spec: LayerSpec, reader: WeightReader, path: Path) -> None:
        super().__init__()
        if spec.int(8, 0):
            raise unsupported(path, spec, "int8 quantized weights")
        if spec.int(19, 0):
            raise unsupported(path, spec, "dynamic weights")
        self.k = _Kernel(spec, path)
        pads = (self.k.pad_left, self.k.pad_right, self.k.pad_top, self.k.pad_bottom)
        same = {SAME_UPPER, SAME_LOWER}
        if not (all(p >= 0 for p in pads) or (pads[0] in same and len(set(pads)) == 1)):
            raise unsupported(path, spec, f"padding {pads}")
        self.pad_value = spec.float(18, 0.0)
        weight, self.bias = self.k.read(reader, spec.name)
        self.weight = _parameter(weight)
        self.activation = Activation(spec, path)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        k = self.k
        if k.pad_left in (SAME_UPPER, SAME_LOWER):
            upper = k.pad_left == SAME_UPPER
            left, right = _same_pads(x.shape[-1], k.kw, k.dw, k.sw, upper)
            top, bottom = _same_pads(x.shape[-2], k.kh, k.dh, k.sh, upper)
        else:
            left, right, top, bottom = k.pad_left, k.pad_right, k.pad_top, k.pad_bottom
        if left or right or top or bottom:
            x = F.pad(x, (left, right, top, bottom), value=self.pad_value)
        y = F.conv2d(x, self.weight, self.bias, stride=(k.sh, k.sw), dilation=(k.dh, k.dw))
        return (self.activation(y),)


class Deconvolution(NcnnLayer):
    """Transposed convolution; the fused activation runs before the output is cropped."""

    def __init__(self, spec: LayerSpec, reader: WeightReader, path: Path) -> None:
        super().__init__()
        if spec.int(28, 0):
            raise unsupported(path, spec, "dynamic weights")
        self.k = _Kernel(spec, path)
        self.output_pad_right = spec.int(18, 0)
        self.output_pad_bottom = spec.int(19, self.output_pad_right)
        self.output_w = spec.int(20, 0)
        self.output_h = spec.int(21, self.output_w)
        pads = (self.k.pad_left, self.k.pad_right, self.k.pad_top, self.k.pad_bottom)
        if min(pads) < 0 and not (self.output_w > 0 and self.output_h > 0):
            raise unsupported(path, spec, f"padding {pads} without an output size")
        weight, self.bias = self.k.read(reader, spec.name)
        # ncnn keeps (out, in, kh, kw) and scatters without flipping; torch wants (in, out, kh, kw)
        self.weight = _parameter(weight.transpose(1, 0, 2, 3))
        self.activation = Activation(spec, path)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        k = self.k
        y = F.conv_transpose2d(x, self.weight, None, stride=(k.sh, k.sw), dilation=(k.dh, k.dw))
        if self.output_pad_right or self.output_pad_bottom:
            y = F.pad(y, (0, self.output_pad_right, 0, self.output_pad_bottom))
        if self.bias is not None:  # ncnn fills the whole output, output pads included, with the bias
            y = y + self.bias.view(1, -1, 1, 1)
        y = self.activation(y)
        h, w = y.shape[-2:]
        if k.pad_left > 0 or k.pad_right > 0 or k.pad_top > 0 or k.pad_bottom > 0:
            top, bottom, left, right = k.pad_top, k.pad_bottom, k.pad_left, k.pad_right
        elif self.output_w > 0 and self.output_h > 0:
            wcut, hcut = w - self.output_w, h - self.output_h
            if SAME_LOWER in (k.pad_left, k.pad_right, k.pad_top, k.pad_bottom):
                top, bottom, left, right = hcut - hcut // 2, hcut // 2, wcut - wcut // 2, wcut // 2
            else:
                top, bottom, left, right = hcut // 2, hcut - hcut // 2, wcut // 2, wcut - wcut // 2
        else:
            return (y,)
        return (y[..., top : h - bottom, left : w - right],)


class InnerProduct(NcnnLayer):
    """Fully connected layer: a 3-D blob is flattened to 1-D, a 2-D blob is a batch of rows."""

    def __init__(self, spec: LayerSpec, reader: WeightReader, path: Path) -> None:
        super().__init__()
        if spec.int(8, 0):
            raise unsupported(path, spec, "int8 quantized weights")
        num_output, size = spec.int(0, 0), spec.int(2, 0)
        if num_output <= 0 or size <= 0 or size % num_output:
            raise ModelError(
                f"ncnn graph '{path}' is malformed: layer '{spec.name}' has weight_data_size {size}, "
                f"not a multiple of its {num_output} outputs."
            )
        self.weight = _parameter(reader.tagged(size, spec.name).reshape(num_output, size // num_output))
        self.bias = _parameter(reader.raw(num_output, spec.name)) if spec.int(1, 0) else None
        self.activation = Activation(spec, path)

    def forward(self, x: Tensor) -> tuple[Tensor]:
        flat = x if dims(x) == 2 else x.flatten(1)
        return (self.activation(F.linear(flat, self.weight, self.bias)),)


def _along_first_axis(values: Tensor, x: Tensor) -> Tensor:
    """``values`` shaped to broadcast along ncnn's outermost axis of ``x`` (c, h or w)."""
    return values.view(1, -1, *([1] * (dims(x) - 1)))


class PReLU(NcnnLayer):
    """``x if x > 0 else slope * x``, one slope for all or one per channel (row, element)."""

    def __init__(self, spec: LayerSpec, reader: WeightReader, path: Path) -> None:
        super().__init__()
        count = spec.int(0, 0)
        if count <= 0:
            raise ModelError(f"ncnn graph '{path}' is malformed: PReLU layer '{spec.name}' has no slopes.")
        self.slope = _parameter(reader.raw(count, spec.name))

    def forward(self, x: Tensor) -> tuple[Tensor]:
        slope = self.slope if self.slope.numel() == 1 else _along_first_axis(self.slope, x)
        return (torch.where(x > 0, x, x * slope),)


class Scale(NcnnLayer):
    """Per-channel ``x * scale (+ bias)``; with ``scale_data_size = -233`` the scale is a second blob."""

    def __init__(self, spec: LayerSpec, reader: WeightReader, path: Path) -> None:
        super().__init__()
        count = spec.int(0, 0)
        self.from_blob = count == -233
        self.scale: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if self.from_blob:
            if len(spec.bottoms) != 2:
                raise unsupported(path, spec, "a blob scale but not two inputs")
        else:
            if count <= 0:
                raise ModelError(f"ncnn graph '{path}' is malformed: Scale layer '{spec.name}' has no scale data.")
            self.scale = _parameter(reader.raw(count, spec.name))
        if spec.int(1, 0):
            if self.from_blob:
                raise unsupported(path, spec, "a bias on a blob scale")
            self.bias = _parameter(reader.raw(count, spec.name))

    def forward(self, x: Tensor, *scale_blob: Tensor) -> tuple[Tensor]:
        scale = scale_blob[0].reshape(x.shape[0], -1) if self.from_blob else self.scale.view(1, -1)
        y = x * scale.view(*scale.shape, *([1] * (dims(x) - 1)))
        if self.bias is not None:
            y = y + _along_first_axis(self.bias, x)
        return (y,)
