"""Example vsrpipe model plugin: ``example-nearest``, nearest-neighbour ×2 of the centre frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.models.base import ModelEntry, ModelInfo


class NearestX2(nn.Module):
    """Nearest-neighbour ×2 of the window's centre frame: (B, T, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self) -> None:
        super().__init__()
        self.info = ModelInfo(name="example-nearest", scale=2, frames=1, trainable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, x.shape[1] // 2]  # (B, C, H, W)
        return F.interpolate(centre, scale_factor=2, mode="nearest")


ENTRY = ModelEntry(
    name="example-nearest",
    scale=2,
    frames=1,
    description="nearest-neighbour x2 (example plugin)",
    build=NearestX2,
)
