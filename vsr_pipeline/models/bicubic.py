"""The ``bicubic`` model: MATLAB-compatible bicubic upscaling of the window's centre frame.

It has no parameters; it is the baseline every network is measured against and the
default model until a trained network ships.
"""

from __future__ import annotations

import torch
from torch import nn

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.models.base import ModelInfo


class Bicubic(nn.Module):
    """Bicubic ×``scale`` of the centre frame: (B, T, C, H, W) -> (B, C, sH, sW)."""

    def __init__(self, scale: float = 4) -> None:
        super().__init__()
        self.info = ModelInfo(name="bicubic", scale=scale, frames=1, trainable=False, any_scale=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, x.shape[1] // 2]  # (B, C, H, W)
        return imresize(centre, scale=self.info.scale)
