"""The difference-of-Gaussians pyramid loss of Goyal (6 levels, σ = 3, band weight W = 10).

    L_DoG(X, Y) = W · Σ_{i=0}^{k-1} MSE(DoG_i X, DoG_i Y) + MSE(K^k X, K^k Y)
    DoG_i X     = K^i X − K^{i+1} X,   K^i = i-fold Gaussian blur, K^0 = identity

See :mod:`vsr_pipeline.adapt.internal` for how the bands are read from the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
