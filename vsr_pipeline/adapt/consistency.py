"""Data-consistency fine-tuning (Lucas et al., Algorithm 1, Eq. 2).

Starting from the trained weights ψ̃, plain SGD minimises

    L(ψ) = || A' f_ψ(y) − y ||²          (mean over pixels)

for one window y, where A' is the degradation believed to have made the LR clip. The
loop stops when the loss has not reached a new minimum for ``patience`` steps (early
stopping) or after ``max_steps`` updates, and returns the output of the lowest loss seen.

The network's output is brought to the requested output size first (the runner's rule:
MATLAB bicubic to round(s·H) × round(s·W) when the requested scale s is not the model's
native one), so A' always works at the true input scale.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.adapt import probe
from vsr_pipeline.adapt.base import Objective, trainable_copy, upscale
from vsr_pipeline.adapt.finetune import FinetuneMethod, FinetuneResult, check_degradation, combine, finetune
from vsr_pipeline.adapt.internal import internal_objective
from vsr_pipeline.degrade.operator import Degradation

log = logging.getLogger(__name__)


def consistency_objective(windows: torch.Tensor, degradation: Degradation, out_hw: tuple[int, int]) -> Objective:
    """Eq. 2 as a closure: net -> (f(y), mean((A' f(y) − y)²)), y the windows' centre frames (B, C, H, W)."""
    y = windows[:, windows.shape[1] // 2]  # (B, C, H, W)

    def objective(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        out = upscale(net, windows, out_hw)  # (B, C, oH, oW)
        return out, F.mse_loss(degradation(out), y)

    return objective


def adapt_consistency(
    model: nn.Module,
    windows: torch.Tensor,
    degradation: Degradation,
    scale: float,
    *,
    lr: float = 0.005,
    momentum: float = 0.0,
    patience: int = 2,
    max_steps: int = 100,
    extra: Objective | None = None,
    extra_weight: float = 1.0,
    optimizer: str = "sgd",
    backtrack: float = 0.0,
) -> FinetuneResult:
    """Algorithm 1 on one batch of windows (B, T, C, H, W): fine-tune a copy of ``model``, return f_ψ̂(y).

    ``degradation`` is A' at the output ``scale``; ``extra`` (e.g. the internal DoG
    objective) is added to Eq. 2 with ``extra_weight`` when given. The caller's model is
    not modified.
    """
    out_hw = check_degradation(degradation, tuple(windows.shape[-2:]), scale)
    objective = consistency_objective(windows, degradation, out_hw)
    if extra is not None:
        objective = combine((objective, 1.0), (extra, extra_weight))
    net = trainable_copy(model)
    return finetune(
        net, objective, lr=lr, momentum=momentum, patience=patience, max_steps=max_steps, optimizer=optimizer,
        backtrack=backtrack,
    )


class Method(FinetuneMethod):
    """``--adapt consistency``: Algorithm 1 on each frame from the trained weights (optionally + the internal loss)."""

    def objective(self, window: torch.Tensor, degradation: Degradation, out_hw: tuple[int, int]) -> Objective:
        """Eq. 2, plus the internal DoG loss with ``internal_weight`` when ``objective`` asks for it."""
        cfg = self.ctx.config
        objective = consistency_objective(window, degradation, out_hw)
        if cfg.objective in ("internal", "both"):
            internal = internal_objective(window, degradation, out_hw, self.dog, with_output=False)
            objective = combine((objective, 1.0), (internal, cfg.internal_weight))
        return objective

    def noise_floor(self) -> float:
        """The plain consistency loss has the 8-bit noise floor; with the internal loss added it has none."""
        return probe.floor_for(self.ctx.config)
