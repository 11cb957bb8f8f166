"""Internal-learning objective (ZSSR-style, Goyal): pairs made from the LR clip itself.

The LR window y is degraded once more with A' (y↓ = A' y, frame by frame); the network
must turn y↓ back into y. The distance is the difference-of-Gaussians pyramid loss of
Goyal (6 levels, σ = 3, band weight W = 10):

    L_DoG(X, Y) = W · Σ_{i=0}^{k-1} MSE(DoG_i X, DoG_i Y) + MSE(K^k X, K^k Y)
    DoG_i X     = K^i X − K^{i+1} X,   K^i = i-fold Gaussian blur, K^0 = identity

Reading of the paper: it writes the bands from DoG_1 = K^1 − K^2, which would leave
details finer than one σ = 3 blur without any loss; we start at K^0 (the image itself)
so the finest band is supervised, keep k = 6 bands, and weight only the band-pass terms
by W ("DoG have smaller magnitude than the blurred image").
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.adapt.base import Context, MethodResult, Objective, trainable_copy, upscale
from vsr_pipeline.adapt.finetune import check_degradation, finetune, finetune_record
from vsr_pipeline.degrade.operator import Degradation


def _gaussian_taps(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()  # (2r + 1,)


class DoGLoss(nn.Module):
    """Difference-of-Gaussians pyramid loss: (B, C, H, W) × (B, C, H, W) -> scalar.

    Blurs are separable with reflected borders (clamped to the image for tiny inputs).
    """

    def __init__(self, levels: int = 6, sigma: float = 3.0, weight: float = 10.0) -> None:
        super().__init__()
        self.levels, self.weight = levels, weight
        self.register_buffer("taps", _gaussian_taps(sigma).float(), persistent=False)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> same
        c = x.shape[1]
        k = self.taps.to(x.dtype)
        r = k.numel() // 2
        ph, pw = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
        kh = k[r - ph : r + ph + 1] if ph < r else k
        kw = k[r - pw : r + pw + 1] if pw < r else k
        x = F.pad(x, (pw, pw, ph, ph), mode="reflect") if ph or pw else x
        x = F.conv2d(x, (kh / kh.sum()).view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return F.conv2d(x, (kw / kw.sum()).view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = torch.cat([x, y])  # (2B, C, H, W): one blur chain for the two images
        loss = both.new_zeros(())
        for _ in range(self.levels):
            blurred = self._blur(both)
            band = both - blurred  # DoG_i
            bx, by = band.chunk(2)
            loss = loss + self.weight * F.mse_loss(bx, by)
            both = blurred
        lx, ly = both.chunk(2)
        return loss + F.mse_loss(lx, ly)  # the low-pass residual K^k


def internal_objective(
    windows: torch.Tensor, degradation: Degradation, out_hw: tuple[int, int], dog: DoGLoss, *, with_output: bool = True
) -> Objective:
    """ZSSR pairs as an objective: net -> (f(y), L_DoG(f(A' y) at y's size, y)).

    ``windows`` (B, T, C, H, W); A' degrades every frame of the window to (h, w) and the
    network's output on that is brought to (H, W), the LR frame's own size. The first
    element returned is the output on the real windows (one more forward pass, without
    gradients), so the objective can stand alone; ``with_output=False`` returns None there,
    for use beside the consistency objective.
    """
    b, t, c, h, w = windows.shape
    y = windows[:, t // 2]  # (B, C, H, W)
    with torch.no_grad():
        small = degradation(windows)  # (B, T, C, h, w)

    def objective(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        pred = upscale(net, small, (h, w))  # (B, C, H, W)
        out = None
        if with_output:
            with torch.no_grad():
                out = upscale(net, windows, out_hw)  # (B, C, oH, oW), the output only
        return out, dog(pred, y)

    return objective


class Method:
    """``--adapt internal``: Algorithm 1 per frame on the internal (ZSSR-style) objective alone."""

    def __init__(self, context: Context) -> None:
        self.ctx = context
        cfg = context.config
        self.dog = DoGLoss(cfg.dog_levels, cfg.dog_sigma, cfg.dog_weight)

    def reset(self) -> None:
        """Nothing is carried from frame to frame."""

    def frame(self, window: torch.Tensor, index: int, scene: int) -> MethodResult:
        """Fine-tune a copy on ``window``'s internal pairs (1, T, C, H, W) and return its output."""
        ctx, cfg = self.ctx, self.ctx.config
        deg = ctx.degradation(scene, window[0])
        out_hw = check_degradation(deg, tuple(window.shape[-2:]), ctx.scale)
        net = trainable_copy(ctx.model)
        result = finetune(
            net, internal_objective(window, deg, out_hw, self.dog), lr=cfg.learning_rate, momentum=cfg.momentum,
            patience=cfg.patience, max_steps=cfg.max_steps, optimizer=cfg.optimizer, backtrack=cfg.backtrack,
        )
        t0 = time.perf_counter()
        record = finetune_record(result, ctx.tuned_output(result, net, window))
        record.infer_seconds = time.perf_counter() - t0 if ctx.forward is not None else 0.0
        return record
