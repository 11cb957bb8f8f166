"""ONNX export of a network at one input shape, in two variants: weights as constants, and as inputs.

Uses torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), which
works offline with the pinned torch; the dynamo exporter needs ``onnxscript``. The export
is traced at a fixed shape because the built-in networks compute their bicubic resize
matrices from the input size in Python; the runtimes keep one export per shape instead
of one per frame.
"""

from __future__ import annotations

import io
import logging
import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger(__name__)

OPSET = 17  # understood by onnxruntime ≥ 1.14 and OpenVINO ≥ 2023
KEEP = 16  # exports kept per model (a frame size, or the few tile shapes of a tiled frame)


@dataclass(frozen=True)
class OnnxExport:
    """One export of a network at one input shape."""

    shape: tuple[int, ...]  # (B, T, C, h, w) it was traced at
    constant: bytes  # the ONNX model, parameters as initializers
    weights_as_inputs: bytes | None  # the same graph with the parameters as graph inputs; None if not every one is an initializer
    params: tuple[str, ...]  # names of the parameter inputs (= the module's parameter names)
    input_name: str = "x"


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()  # model -> {(shape, weights): export}


def export_onnx(model: nn.Module, shape: tuple[int, ...]) -> OnnxExport:
    """Export ``model`` at input ``shape`` (B, T, C, h, w); see :class:`OnnxExport`.

    Exports are shared between runtimes (``auto`` builds several) while the model's
    weights stay as they were (an in-place change makes a new export).
    """
    weights = tuple((p.data_ptr(), p._version) for p in model.parameters())
    per_model = _CACHE.setdefault(model, {})
    key = (tuple(shape), weights)
    if key not in per_model:
        if len(per_model) >= KEEP:
            per_model.pop(next(iter(per_model)))  # the oldest
        per_model[key] = _export(model, shape)
    return per_model[key]


def _export(model: nn.Module, shape: tuple[int, ...]) -> OnnxExport:
    import onnx

    param = next(model.parameters(), None)
    example = torch.zeros(shape, dtype=torch.float32, device=param.device if param is not None else "cpu")
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: intended, the shape is fixed
        torch.onnx.export(
            model, (example,), buf, dynamo=False, opset_version=OPSET, input_names=["x"], output_names=["y"],
            do_constant_folding=False,  # keeps every parameter an initializer under its own name
        )
    constant = buf.getvalue()
    proto = onnx.load_from_string(constant)
    graph = proto.graph
    names = {n for n, _ in model.named_parameters()}
    found = [init for init in graph.initializer if init.name in names]
    if len(found) != len(names):  # renamed, shared or unused: feeding weights by name would miss some
        log.info("%s: not every parameter is an ONNX initializer; adapted copies run in torch", type(model).__name__)
        return OnnxExport(tuple(shape), constant, None, ())
    rest = [init for init in graph.initializer if init.name not in names]
    for init in found:
        graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    del graph.initializer[:]
    graph.initializer.extend(rest)
    return OnnxExport(tuple(shape), constant, proto.SerializeToString(), tuple(init.name for init in found))
