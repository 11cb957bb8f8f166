"""The runtime protocol, and the part the ONNX-based runtimes share: one export per input shape.

A runtime is built from a torch module (the trained network) and is then asked for
forward passes of input tensors (B, T, C, h, w) -> (B, C, s·h, s·w). The ONNX runtimes
export the network once per distinct input shape (a video has one frame size; a tiled
frame a few tile sizes) with its parameters as graph *inputs* as well as a variant with
them as constants, so an adapted copy runs on the same export with its own weights.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Protocol

import numpy as np
import torch
from torch import nn

from vsr_pipeline.runtimes.export import OnnxExport, export_onnx

log = logging.getLogger(__name__)

MAX_SHAPES = 16  # compiled shapes kept per runtime (frame size, and the few tile shapes of a tiled frame)


class Runtime(Protocol):
    """What the runner asks of a runtime."""

    name: str  # "torch", "onnxruntime", "openvino"

    def run(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """``x`` (B, T, C, h, w) on the runner's device -> (B, C, s·h, s·w) float, not clamped.

        ``net``: an adapted copy of the built network (same architecture and parameter
        names) whose current weights to use — the built network itself may be passed, and
        runs the way a copy would; None: the weights the runtime was built from.
        """
        ...


def torch_only(net: nn.Module) -> str | None:
    """Why ``net`` must run in torch (an ONNX export would not show its behaviour), or None."""
    if any(m._forward_hooks or m._forward_pre_hooks for m in net.modules()):
        return "it carries forward hooks (MC-dropout)"
    if getattr(net, "mc_dropout", None):
        return "its MC-dropout is on"
    return None


class ExportedRuntime:
    """Base of the ONNX runtimes: exports per input shape, compiles lazily, feeds adapted weights.

    Subclasses implement :meth:`_compile` (ONNX bytes -> a callable ``feeds -> output array``).
    """

    name = "onnx"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.exports = 0  # ONNX exports made so far (tests check that frames of one size share one)
        self._cache: OrderedDict[tuple, dict] = OrderedDict()

    def _compile(self, onnx_bytes: bytes):  # -> Callable[[dict[str, np.ndarray]], np.ndarray]
        raise NotImplementedError

    def _entry(self, shape: tuple[int, ...]) -> dict:
        entry = self._cache.get(shape)
        if entry is None:
            export = export_onnx(self.model, shape)
            self.exports += 1
            entry = {"export": export}
            self._cache[shape] = entry
            if len(self._cache) > MAX_SHAPES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(shape)
        return entry

    def run(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """See :class:`Runtime`; an adapted ``net`` runs on the weights-as-inputs variant of the same export."""
        if net is not None and torch_only(net):
            with torch.inference_mode():
                return net(x).float()
        entry = self._entry(tuple(x.shape))
        export: OnnxExport = entry["export"]
        feeds = {export.input_name: np.ascontiguousarray(x.detach().float().cpu().numpy())}
        if net is None:
            fn = entry.get("const") or entry.setdefault("const", self._compile(export.constant))
        elif export.weights_as_inputs is None:
            with torch.inference_mode():  # some parameter is not a plain initializer: torch stays exact
                return net(x).float()
        else:
            fn = entry.get("inputs") or entry.setdefault("inputs", self._compile(export.weights_as_inputs))
            params = dict(net.named_parameters())
            for name in export.params:
                feeds[name] = np.ascontiguousarray(params[name].detach().float().cpu().numpy())
        y = fn(feeds)
        return torch.from_numpy(np.asarray(y)).to(x.device)
