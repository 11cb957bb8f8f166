"""Runtimes: what runs a network's forward pass for the runner.

The runner (:mod:`vsr_pipeline.runner`) owns tiling, resizing to other scales and batching;
a runtime only turns one input tensor into one output tensor::

    rt = build_runtime("onnxruntime", model, device)   # nothing is exported yet
    y = rt.run(x)                 # x (B, T, C, h, w) -> (B, C, s·h, s·w), the weights it was built from
    y = rt.run(x, net=tuned)      # an adapted copy of the same network: its weights, no re-export

``torch`` runs the module itself (CPU or CUDA, fp16 with ``half``); ``onnxruntime`` and
``openvino`` run an ONNX export of it, made once per input shape (frame or tile size) and
kept. ``auto`` is not a runtime but a rule: :mod:`vsr_pipeline.runtimes.auto`.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from vsr_pipeline.errors import ConfigError
from vsr_pipeline.runtimes.base import Runtime

__all__ = ["NAMES", "RUNTIMES", "Runtime", "build_runtime", "installed", "usable"]

RUNTIMES = ("torch", "onnxruntime", "openvino")  # every runtime, in the order ties are broken
NAMES = (*RUNTIMES, "auto")  # what --runtime accepts (config.RUNTIMES, kept equal by a test)
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino", "onnx")}
_EXTRA = {"onnxruntime": "onnx", "openvino": "openvino"}


def installed(name: str) -> bool:
    """True when the packages runtime ``name`` needs can be imported (torch always can)."""
    return all(importlib.util.find_spec(p) is not None for p in _PACKAGES.get(name, ()))


def usable(device: torch.device, half: bool = False) -> list[str]:
    """The runtimes installed here that can run on ``device`` (with fp16 when ``half``), torch first."""
    names = ["torch"]
    if half:
        return names  # only torch runs fp16 here
    if device.type == "cpu":
        names += [n for n in ("onnxruntime", "openvino") if installed(n)]
    elif installed("onnxruntime"):
        from vsr_pipeline.runtimes.onnxrt import cuda_providers

        if cuda_providers():
            names.append("onnxruntime")
    return names


def build_runtime(name: str, model: nn.Module, device: torch.device, *, half: bool = False) -> Runtime:
    """The runtime ``name`` (one of :data:`RUNTIMES`) for ``model`` on ``device``.

    Raises ConfigError (one sentence) when it is not installed or cannot serve the device or fp16.
    """
    if name not in RUNTIMES:
        raise ConfigError(f"Unknown runtime {name!r}; use one of {', '.join(NAMES)}.")
    if name == "torch":
        from vsr_pipeline.runtimes.torch_rt import TorchRuntime

        return TorchRuntime(model, device, half=half)
    if not installed(name):
        raise ConfigError(
            f"--runtime {name} needs the {name} package; install it with `pip install 'vsr-pipeline[{_EXTRA[name]}]'` or use --runtime torch."
        )
    if half:
        raise ConfigError("--half works with --runtime torch only; drop --half or use --runtime torch.")
    if name not in usable(device):
        raise ConfigError(f"--runtime {name} cannot run on {device} here; use --device cpu or --runtime torch.")
    if name == "onnxruntime":
        from vsr_pipeline.runtimes.onnxrt import OnnxRuntime

        return OnnxRuntime(model, device)
    from vsr_pipeline.runtimes.openvino_rt import OpenVinoRuntime

    return OpenVinoRuntime(model, device)
