"""Algorithm 1 of Lucas et al.: fine-tune a copy of the network on an objective, with early stopping.

Shared by every per-frame method (consistency, masked, internal) and by online
adaptation's objectives: the optimiser, the early-stopping loop with optional
backtracking, objectives' combination, and the check that A' maps the output size back
to the input size.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from vsr_pipeline.adapt import probe
from vsr_pipeline.adapt.base import Context, MethodResult, Objective, make_optimizer, trainable_copy
from vsr_pipeline.adapt.dog import DoGLoss
from vsr_pipeline.degrade.operator import Degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.limits import output_size

log = logging.getLogger(__name__)


def check_degradation(degradation: Degradation, in_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """The output size for LR frames of ``in_hw`` at ``scale``; raises ConfigError when A' does not map it back."""
    out_hw = output_size(in_hw[0], in_hw[1], scale)
    if abs(degradation.scale - scale) > 1e-9:
        raise ConfigError(
            f"The degradation '{degradation.spec}' is for scale {degradation.scale:g}, but the output scale is {scale:g}; "
            "build it with the output scale."
        )
    back = degradation.lr_size(*out_hw)
    if tuple(back) != tuple(in_hw):
        raise ConfigError(
            f"The degradation '{degradation.spec}' at scale {scale:g} turns the {out_hw[1]}x{out_hw[0]} output into "
            f"{back[1]}x{back[0]}, not the {in_hw[1]}x{in_hw[0]} input, so it cannot be used for adaptation; "
            "pick a scale that divides the frame size (or an integer scale)."
        )
    return out_hw


def combine(*objectives: tuple[Objective, float]) -> Objective:
    """Weighted sum of objectives; the output is the first one's."""

    def objective(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        out, total = None, 0.0
        for fn, weight in objectives:
            o, loss = fn(net)
            out = o if out is None else out
            total = total + weight * loss
        return out, total

    return objective


@dataclass
class FinetuneResult:
    """What one run of Algorithm 1 produced."""

    output: torch.Tensor | None  # (B, C, oH, oW) best weights' output (trained ones after divergence), detached; None if the objective gives none
    losses: list[float] = field(default_factory=list)  # loss before each update; losses[0] is the trained weights'
    steps: int = 0  # SGD updates made
    best_step: int = 0  # index into losses of the returned output
    diverged: bool = False  # a loss was NaN/inf: the output is the trained weights'
    state: dict | None = None  # state_dict of the best weights (None after divergence)

    @property
    def loss_before(self) -> float:
        return self.losses[0] if self.losses else math.nan

    @property
    def loss_after(self) -> float:
        return self.losses[self.best_step] if self.losses and not self.diverged else self.loss_before


def finetune(
    net: nn.Module,
    objective: Objective,
    *,
    lr: float = 0.005,
    momentum: float = 0.0,
    patience: int = 2,
    max_steps: int = 100,
    optimizer: str = "sgd",
    backtrack: float = 0.0,
) -> FinetuneResult:
    """Algorithm 1: SGD on ``objective(net)`` with early stopping; ``net`` is updated in place.

    Args:
        net: the network to tune (a copy made by :func:`trainable_copy`; it ends at the last
            weights tried, the best ones are in ``result.state``).
        objective: net -> (output (B, C, oH, oW), scalar loss), e.g. :func:`consistency_objective`.
        patience: stop once this many consecutive steps brought no new minimum.
        max_steps: at most this many updates.
        optimizer: "sgd" (the paper's, with ``momentum``) or "adam".
        backtrack: 0 = Algorithm 1 as published (a step that brings no new minimum is kept
            and the next step starts from it). In (0, 1): such a step is undone instead —
            weights, optimiser state and gradient go back to the best point — and the step
            is retried from there with the learning rate multiplied by ``backtrack``
            (a backtracking line search); ``patience`` still counts consecutive misses.

    Returns:
        A :class:`FinetuneResult`; on a NaN/inf loss the output falls back to the trained
        weights' output (the first forward pass) and a warning is logged.
    """
    if not (0.0 <= backtrack < 1.0):
        raise ConfigError(f"The backtracking factor must be in [0, 1), got {backtrack}.")
    opt = make_optimizer(net, optimizer, lr, momentum)
    params = [p for p in net.parameters() if p.requires_grad]
    result = FinetuneResult(output=torch.empty(0))
    first: torch.Tensor | None = None
    best = math.inf
    bad = 0
    rate = lr
    at_best: tuple[dict, list[torch.Tensor | None]] | None = None  # optimiser state and gradient at the best point
    for step in range(max_steps + 1):
        with torch.enable_grad():
            out, loss = objective(net)  # (B, C, oH, oW), ()
        value = float(loss.detach())
        if first is None:
            first = None if out is None else out.detach()
        if not math.isfinite(value) or (out is not None and not torch.isfinite(out).all()):
            if backtrack and at_best is not None and bad + 1 < patience and step < max_steps:
                log.info("adaptation step %d gave a non-finite loss; backtracking", step)
                value = math.inf  # a miss like any other: undo it and retry with a smaller step
            else:
                log.warning("adaptation diverged (loss %s at step %d); using the trained weights for this frame", value, step)
                result.diverged, result.output, result.state = True, first, None
                result.losses.append(value)
                return result
        result.losses.append(value)
        improved = value < best
        if improved:
            best, bad = value, 0
            result.output, result.best_step = (None if out is None else out.detach()), step
            result.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
        if step == max_steps:
            break
        if backtrack and not improved and at_best is not None:
            # Undo the last step: best weights, optimiser state and gradient, then a shorter step.
            net.load_state_dict(result.state)
            opt.load_state_dict(copy.deepcopy(at_best[0]))
            for p, g in zip(params, at_best[1]):
                p.grad = None if g is None else g.clone()
            rate *= backtrack
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if backtrack:
                at_best = (copy.deepcopy(opt.state_dict()), [None if p.grad is None else p.grad.clone() for p in params])
        for group in opt.param_groups:
            group["lr"] = rate
        opt.step()
        result.steps += 1
    return result


def finetune_record(result: FinetuneResult, output: torch.Tensor, mask_fraction: float | None = None) -> MethodResult:
    """A :class:`MethodResult` from one run of Algorithm 1."""
    return MethodResult(
        output=output, loss_before=result.loss_before, loss_after=result.loss_after, steps=result.steps,
        fallback=result.diverged, unchanged=result.diverged or result.best_step == 0, mask_fraction=mask_fraction,
    )


class FinetuneMethod:
    """A per-frame method built on Algorithm 1: subclasses give the objective, this runs and records it.

    Each frame starts from the trained weights (nothing is carried over); the output is
    that of the best weights, through the context's output pass.
    """

    def __init__(self, context: Context) -> None:
        self.ctx = context
        cfg = context.config
        self.dog = DoGLoss(cfg.dog_levels, cfg.dog_sigma, cfg.dog_weight)  # for objectives with the internal loss
        self.step_size = probe.StepSizes(context)

    def reset(self) -> None:
        """A new clip: nothing else is carried from frame to frame."""
        self.step_size.reset()

    def objective(self, window: torch.Tensor, degradation: Degradation, out_hw: tuple[int, int]) -> Objective:
        """The loss to minimise for ``window`` (1, T, C, H, W)."""
        raise NotImplementedError

    def noise_floor(self) -> float:
        """The probe's floor for this method's objective (:data:`probe.NOISE_FLOOR` for plain consistency, else 0)."""
        return 0.0

    def frame(self, window: torch.Tensor, index: int, scene: int) -> MethodResult:
        """Fine-tune a copy of the model on ``window`` (1, T, C, H, W) and return its output."""
        ctx, cfg = self.ctx, self.ctx.config
        deg = ctx.degradation(scene, window[0])
        out_hw = check_degradation(deg, tuple(window.shape[-2:]), ctx.scale)
        lr = self.step_size(
            window, index, scene, lambda crops: self.objective(crops, deg, crop_size(deg, crops, ctx.scale)), self.noise_floor()
        )
        if lr is None:
            return kept(ctx, window, out_hw)
        net = trainable_copy(ctx.model)
        result = finetune(
            net, self.objective(window, deg, out_hw), lr=lr, momentum=cfg.momentum,
            patience=cfg.patience, max_steps=cfg.max_steps, optimizer=cfg.optimizer, backtrack=cfg.backtrack,
        )
        t0 = time.perf_counter()
        record = finetune_record(result, ctx.tuned_output(result, net, window, out_hw))
        record.infer_seconds = time.perf_counter() - t0 if ctx.forward is not None else 0.0
        record.lr = lr
        return record


def crop_size(degradation: Degradation, crops: torch.Tensor, scale: float) -> tuple[int, int]:
    """The output size of LR ``crops`` (N, T, C, h, w), checked against A' like a whole frame."""
    return check_degradation(degradation, tuple(crops.shape[-2:]), scale)


def kept(ctx: Context, window: torch.Tensor, out_hw: tuple[int, int]) -> MethodResult:
    """The record of a frame the guard left to the trained weights: their output, no steps."""
    t0 = time.perf_counter()
    out = ctx.output(ctx.model, window, out_hw)
    nan = float("nan")
    return MethodResult(
        output=out, loss_before=nan, loss_after=nan, steps=0, infer_seconds=time.perf_counter() - t0,
        unchanged=True, guarded=True,
    )
