"""Tiny networks shared by the runtime tests (a module of its own: `conftest` names clash between test folders)."""

from __future__ import annotations

import torch
from torch import nn

from vsr_pipeline.models.base import ModelInfo


def perturbed(model: nn.Module, seed: int = 1, size: float = 0.05) -> nn.Module:
    """A copy of ``model`` with every parameter moved by relative noise (± ``size``) plus a little absolute: an 'adapted' network."""
    import copy

    gen = torch.Generator().manual_seed(seed)
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for p in copy_.parameters():
            p.mul_(1 + size * torch.randn(p.shape, generator=gen)).add_(1e-3 * torch.randn(p.shape, generator=gen))
    return copy_.eval()


class ConvStack(nn.Module):
    """``depth`` 3×3 convolutions (tanh between), then a ×2 pixel shuffle: receptive radius exactly ``depth`` LR px.

    Used for seams: with ``tile_pad == depth`` a tile has exactly the context its core needs.
    """

    def __init__(self, depth: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.info = ModelInfo(name=f"stack{depth}", scale=2, frames=5)
        layers: list[nn.Module] = [nn.Conv2d(15, 6, 3, padding=1)]
        for _ in range(depth - 2):
            layers += [nn.Tanh(), nn.Conv2d(6, 6, 3, padding=1)]
        layers += [nn.Tanh(), nn.Conv2d(6, 12, 3, padding=1), nn.PixelShuffle(2)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 5, 3, H, W) -> (B, 3, 2H, 2W)
        b, t, c, h, w = x.shape
        return self.body(x.reshape(b, t * c, h, w)) + 0.5
