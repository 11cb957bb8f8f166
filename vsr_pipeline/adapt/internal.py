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

import torch
from torch import nn

from vsr_pipeline.adapt.base import Objective, upscale
from vsr_pipeline.adapt.dog import DoGLoss
from vsr_pipeline.adapt.finetune import FinetuneMethod
from vsr_pipeline.degrade.operator import Degradation


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


class Method(FinetuneMethod):
    """``--adapt internal``: Algorithm 1 per frame on the internal (ZSSR-style) objective alone."""

    def objective(self, window: torch.Tensor, degradation: Degradation, out_hw: tuple[int, int]) -> Objective:
        """The DoG loss between f(A' y) and y; the output pass runs once, on the best weights, afterwards."""
        return internal_objective(window, degradation, out_hw, self.dog, with_output=False)
