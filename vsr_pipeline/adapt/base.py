"""The small interface every adaptation method implements (see :mod:`vsr_pipeline.adapt.registry`).

A method is a class ``Method(context)`` with two calls::

    result = method.frame(window, index, scene)   # window (1, T, C, H, W) -> MethodResult
    method.reset()                                # a new clip: forget what was carried over

The :class:`Context` gives it the trained model (never to be modified: methods tune a
copy), the output scale, the :class:`~vsr_pipeline.adapt.config.AdaptConfig`, A' of each
scene, the output pass to use for the final frame (the runner's, with its tiling and
dtype) and, for random access, ``fetch``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.degrade.operator import Degradation
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError

Objective = Callable[[nn.Module], tuple[torch.Tensor, torch.Tensor]]  # net -> (output (B, C, oH, oW), scalar loss)
Fetch = Callable[[int], tuple[torch.Tensor, int]]  # frame index -> (window (T, C, H, W), scene id)
Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (net, windows (B, T, C, H, W)) -> (B, C, oH, oW) in [0, 1]


@dataclass
class Context:
    """What a method is given when it is built."""

    model: nn.Module  # the trained network, fp32, on the device; never modified
    scale: float  # output scale
    config: AdaptConfig
    degradation: Callable[[int, torch.Tensor], Degradation]  # (scene, window (T, C, H, W)) -> A' (cached per scene)
    forward: Forward | None = None  # the output pass when it differs from a plain forward (tiles, fp16); None: plain
    fetch: Fetch | None = None  # random access to other frames' windows (online adaptation)
    scene_start: Callable[[int], int] | None = None  # frame -> first frame of its scene, when the driver knows it

    def output(self, net: nn.Module, windows: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        """``net``'s output for windows (B, T, C, H, W) through the output pass -> (B, C, oH, oW) in [0, 1]."""
        if self.forward is not None:
            return self.forward(net, windows)
        with torch.no_grad():
            return torch.nan_to_num(upscale(net, windows, out_hw), nan=0.0).clamp(0, 1)

    def tuned_output(self, result, net: nn.Module, windows: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
        """The output of Algorithm 1's best weights: the objective's own pass when it made one, else the output pass.

        ``result`` is a :class:`~vsr_pipeline.adapt.finetune.FinetuneResult` of ``net``; after a
        divergence the trained weights' output is returned.
        """
        own = result.output is not None and result.output.numel() > 0
        if result.diverged or result.state is None:
            if own and self.forward is None:
                return torch.nan_to_num(result.output, nan=0.0).clamp(0, 1)
            return self.output(self.model, windows, out_hw)
        if own and self.forward is None:
            return torch.nan_to_num(result.output, nan=0.0).clamp(0, 1)
        net.load_state_dict(result.state)
        return self.output(net, windows, out_hw)


@dataclass
class MethodResult:
    """What a method did for one frame."""

    output: torch.Tensor  # (1, C, oH, oW) in [0, 1]
    loss_before: float  # objective of the trained weights (online: the first step's crops)
    loss_after: float  # objective of the weights used for the output (online: the last step's crops)
    steps: int  # optimiser updates made for this frame
    infer_seconds: float = 0.0  # time in a separate output pass (part of the frame's time)
    fallback: bool = False  # diverged: the trained weights' output was used
    unchanged: bool = False  # the output is the trained weights' own (no step lowered the loss)
    mask_fraction: float | None = None  # masked: fraction of output pixels in the mask
    replayed: int = 0  # online: earlier frames re-adapted for an out-of-order request
    guarded: bool = False  # the probe's guard kept the trained weights (held-out crops did not improve)
    lr: float | None = None  # the learning rate used (the probe's choice, or the configured one); None: no steps


def make_optimizer(net: nn.Module, name: str, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    """SGD (Lucas et al.) or Adam (Goyal's online runs) over ``net``'s parameters."""
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    raise ConfigError(f"Unknown optimizer '{name}'; use sgd or adam.")


def trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters require gradients (the caller's model is untouched)."""
    net = copy.deepcopy(model)
    for p in net.parameters():
        p.requires_grad_(True)
    if hasattr(net, "set_mc_dropout"):
        net.set_mc_dropout(None)
    return net.eval()  # no batch-norm / dropout statistics to update: eval is the inference graph


def upscale(model: nn.Module, windows: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Run ``model`` on windows (B, T, C, H, W) and bring its output to ``out_hw``; differentiable.

    Single-frame models get the centre frame, as in the runner. Returns (B, C, oH, oW),
    not clamped.
    """
    if getattr(model.info, "frames", 5) == 1:
        t = windows.shape[1] // 2
        windows = windows[:, t : t + 1]
    y = model(windows)  # (B, C, sH, sW), s = native scale
    if tuple(y.shape[-2:]) != tuple(out_hw):
        y = imresize(y, out_shape=out_hw)  # (B, C, oH, oW)
    return y
