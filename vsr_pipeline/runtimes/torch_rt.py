"""The torch runtime: the module itself, on CPU or CUDA, fp32 or fp16."""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn


class TorchRuntime:
    """Runs the module (and adapted copies of it) in torch.

    With ``half`` (CUDA) it keeps its own fp16 copy of the trained network for plain
    inference and runs fp32 networks handed to :meth:`run` (adapted copies) under fp16 autocast.
    """

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device, *, half: bool = False) -> None:
        self.model = model
        self.device = device
        self.half = half
        self.fp16 = copy.deepcopy(model).to(dtype=torch.float16) if half else None

    def run(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """``x`` (B, T, C, h, w) -> (B, C, s·h, s·w) float32; ``net``: an adapted copy, None: the built model."""
        if net is None or net is self.model:
            net = self.fp16 if self.fp16 is not None else self.model
        param = next(net.parameters(), None)
        dtype = param.dtype if param is not None else (torch.float16 if self.half else torch.float32)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.float16)
            if self.half and dtype == torch.float32 else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            return net(x.to(dtype)).float()
