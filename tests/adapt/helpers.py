"""Tiny networks and synthetic clips for the adaptation tests."""

from __future__ import annotations

import torch

from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig


def tiny_net(scale: int = 2, seed: int = 0) -> VSRNet:
    """A randomly initialised 8-feature, 2-block VSRNet (starts close to bicubic)."""
    torch.manual_seed(seed)
    return VSRNet(VSRNetConfig(scale=scale, features=8, blocks=2)).eval()


def hr_clip(frames: int = 5, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A textured HR clip (N, 3, H, W) in [0, 1] that pans one pixel per frame."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h + frames, dtype=torch.float32), torch.arange(w + frames, dtype=torch.float32), indexing="ij")
    img = torch.zeros(3, h + frames, w + frames)
    for _ in range(6):
        f = torch.rand(2, generator=g) * 0.5 + 0.15
        ph = torch.rand(3, generator=g) * 6.28
        img += torch.sin(xx * f[0] + ph[:, None, None]) * torch.cos(yy * f[1] + ph.flip(0)[:, None, None])
    img = (img - img.min()) / (img.max() - img.min())
    return torch.stack([img[:, i : i + h, i : i + w] for i in range(frames)])


def window_at(clip: torch.Tensor, i: int) -> torch.Tensor:
    """The 5-frame window (5, C, H, W) around frame i, edges replicated."""
    idx = torch.arange(i - 2, i + 3).clamp(0, len(clip) - 1)
    return clip[idx]
