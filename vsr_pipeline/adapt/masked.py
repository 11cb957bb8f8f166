"""Masked fine-tuning against GAN artifacts (Lucas et al., Sec. VI-B, Eq. 3 and 4).

With the artifact mask M from MC-dropout uncertainty (:mod:`~vsr_pipeline.adapt.uncertainty`),
Algorithm 1 minimises the masked consistency loss

    L(ψ) = || A'(f_ψ(y) ⊙ M) − y ⊙ M_d ||²          (Eq. 3, mean over pixels)

and the output keeps the trained network's pixels outside the mask:

    x̂ = f_ψ̂(y) ⊙ M + f_ψ̃(y) ⊙ (1 − M)              (Eq. 4)

M_d, "the downsampled version of M", is A' applied to M. Read literally, Eq. 3 compares
A'(x ⊙ M) with y ⊙ A'(M), which are not equal even for the true image x wherever x has
texture under a mask edge, and GAN masks are scattered blobs over texture: on bikes frame
150 the literal loss cost 2.4 dB. The default loss therefore weights the consistency
residual by the LR mask instead (``loss="residual"``):

    L(ψ) = || (A' f_ψ(y) − y) ⊙ M_d ||²

which the true image satisfies exactly and which still concentrates the updates on the
uncertain regions; ``loss="eq3"`` keeps the paper's form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.adapt.base import Context, MethodResult, trainable_copy, upscale
from vsr_pipeline.adapt.dropout import with_mc_dropout
from vsr_pipeline.adapt.consistency import consistency_objective
from vsr_pipeline.adapt.finetune import FinetuneResult, check_degradation, crop_size, finetune, finetune_record, kept
from vsr_pipeline.adapt.probe import NOISE_FLOOR, StepSizes
from vsr_pipeline.adapt.uncertainty import artifact_mask, check_dropout, save_mask_images, variance_map
from vsr_pipeline.degrade.operator import Degradation
from vsr_pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class MaskedResult:
    """Masked fine-tuning of one batch: the blended output and what made it."""

    output: torch.Tensor  # (B, C, oH, oW) Eq. 4, detached
    variance: torch.Tensor  # (B, 1, oH, oW) MC-dropout variance V
    mask: torch.Tensor  # (B, 1, oH, oW) binary mask M after the median filter
    tune: FinetuneResult  # the Algorithm 1 run on Eq. 3


def adapt_masked(
    model: nn.Module,
    windows: torch.Tensor,
    degradation: Degradation,
    scale: float,
    *,
    passes: int = 50,
    p: float = 0.0005,
    median: int = 3,
    seed: int = 0,
    lr: float = 0.005,
    momentum: float = 0.0,
    patience: int = 2,
    max_steps: int = 100,
    optimizer: str = "sgd",
    loss: str = "residual",
    backtrack: float = 0.0,
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    dropout_net: nn.Module | None = None,
) -> MaskedResult:
    """Sec. VI on windows (B, T, C, H, W): variance map, mask, Eq. 3 fine-tuning of a copy, Eq. 4 blend.

    ``forward(net, windows)``, when given, produces both outputs of the Eq. 4 blend (e.g. the
    runner's tiled or fp16 pass); by default they are plain forward passes. Raises
    ConfigError when ``model`` cannot host MC-dropout or ``degradation`` does not fit the
    scale. The caller's model is not modified.
    """
    if dropout_net is None:
        check_dropout(model)
    out_hw = check_degradation(degradation, tuple(windows.shape[-2:]), scale)
    y = windows[:, windows.shape[1] // 2]  # (B, C, H, W)
    variance = variance_map(model, windows, out_hw, passes=passes, p=p, seed=seed, dropout_net=dropout_net)  # (B, 1, oH, oW)
    mask = artifact_mask(variance, median)  # (B, 1, oH, oW)
    mask_d = degradation(mask)  # (B, 1, H, W) M_d

    if loss not in ("residual", "eq3"):
        raise ConfigError(f"Unknown masked loss '{loss}'; use residual or eq3.")

    def objective(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        out = upscale(net, windows, out_hw)  # (B, C, oH, oW)
        if loss == "eq3":
            return out, F.mse_loss(degradation(out * mask), y * mask_d)  # Eq. 3 as written
        return out, F.mse_loss((degradation(out) - y) * mask_d, torch.zeros_like(y))

    net = trainable_copy(model)
    tune = finetune(
        net, objective, lr=lr, momentum=momentum, patience=patience, max_steps=max_steps,
        optimizer=optimizer, backtrack=backtrack,
    )
    if forward is None:
        with torch.no_grad():
            trained = upscale(model, windows, out_hw)  # f_ψ̃(y), dropout off
        tuned = tune.output  # f_ψ̂(y) at the lowest loss (or f_ψ̃(y) itself after a divergence)
    else:
        trained = forward(model, windows)
        if tune.state is not None and not tune.diverged:
            net.load_state_dict(tune.state)
            tuned = forward(net, windows)
        else:
            tuned = trained
    output = tuned * mask + trained * (1 - mask)  # Eq. 4
    return MaskedResult(output=output, variance=variance, mask=mask, tune=tune)


class Method:
    """``--adapt masked``: MC-dropout artifact mask, masked fine-tuning, Eq. 4 blend, per frame."""

    def __init__(self, context: Context) -> None:
        check_dropout(context.model)
        self.ctx = context
        self.dropout_net = with_mc_dropout(context.model, context.config.mc_dropout)  # made once, not per frame
        self.step_size = StepSizes(context)

    def reset(self) -> None:
        """A new clip: nothing else is carried from frame to frame."""
        self.step_size.reset()

    def frame(self, window: torch.Tensor, index: int, scene: int) -> MethodResult:
        """Mask, fine-tune and blend for ``window`` (1, T, C, H, W)."""
        ctx, cfg = self.ctx, self.ctx.config
        deg = ctx.degradation(scene, window[0])
        # the probe judges the step size on the plain consistency loss of crops (a mask needs the whole frame)
        lr = self.step_size(
            window, index, scene, lambda crops: consistency_objective(crops, deg, crop_size(deg, crops, ctx.scale)), NOISE_FLOOR
        )
        if lr is None:
            return kept(ctx, window, check_degradation(deg, tuple(window.shape[-2:]), ctx.scale))
        m = adapt_masked(
            ctx.model, window, deg, ctx.scale, passes=cfg.mc_passes, p=cfg.mc_dropout, median=cfg.median,
            seed=cfg.seed + index, lr=lr, momentum=cfg.momentum, patience=cfg.patience,
            max_steps=cfg.max_steps, optimizer=cfg.optimizer, loss=cfg.mask_loss, backtrack=cfg.backtrack,
            forward=ctx.forward, dropout_net=self.dropout_net,
        )
        if cfg.save_masks:
            save_mask_images(cfg.save_masks, index, m.variance[0], m.mask[0])
        output = torch.nan_to_num(m.output, nan=0.0).clamp(0, 1)
        record = finetune_record(m.tune, output, mask_fraction=float(m.mask.mean()))
        record.lr = lr
        return record
