"""Tiled, batched inference of a model on CPU or CUDA.

Frames larger than memory are cut into LR tiles with ``tile_pad`` pixels of context on
each side; every tile is upscaled and only its core is kept, so a convolutional network
whose receptive field fits in the pad gives exactly the untiled result (no seams).
A model serving a scale other than its native one has its stitched output resized with
MATLAB bicubic to the requested size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    """Where and how the model runs."""

    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    half: bool = False  # fp16 inference (CUDA only)
    tile: int = 0  # LR tile size in pixels; 0 = whole frames
    tile_pad: int = 16  # LR context pixels around each tile (≥ the model's receptive radius)
    batch: int = 1  # windows per forward pass


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"Unknown device {name!r}; use auto, cpu, cuda or cuda:N.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return device


def output_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Output (height, width) for an input of h×w at ``scale`` (rounded to the nearest pixel)."""
    return max(1, round(h * scale)), max(1, round(w * scale))


class Runner:
    """Run ``model`` on batches of windows: (B, T, C, H, W) -> (B, C, round(sH), round(sW)).

    ``scale`` is the requested output scale; the model's native ``info.scale`` is used
    for the network itself.
    """

    def __init__(self, model: torch.nn.Module, scale: float, config: RunnerConfig = RunnerConfig()) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if config.half and self.device.type != "cuda":
            raise ConfigError("--half needs a CUDA device; fp16 on the CPU is slower and less accurate.")
        if config.tile < 0 or config.tile_pad < 0:
            raise ConfigError("--tile and --tile-pad must be ≥ 0.")
        self.dtype = torch.float16 if config.half else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.info = model.info
        self.scale = scale
        self.native = float(self.info.scale)

    @torch.inference_mode()
    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Upscale the centre frames of ``windows`` (B, T, C, H, W); returns float32 on the runner's device."""
        if self.info.frames == 1:
            t = windows.shape[1] // 2
            windows = windows[:, t : t + 1]
        elif windows.shape[1] != self.info.frames:
            raise ValueError(f"model reads {self.info.frames} frames, got windows of {windows.shape[1]}")
        x = windows.to(self.device, self.dtype, non_blocking=True)
        h, w = x.shape[-2:]
        tile = self.config.tile
        if tile and (h > tile or w > tile):
            y = self._tiled(x, tile, self.config.tile_pad)
        else:
            y = self.model(x)
        y = y.float()
        target = output_size(h, w, self.scale)
        if tuple(y.shape[-2:]) != target:
            y = imresize(y, out_shape=target)
        return y.clamp_(0.0, 1.0)

    def _tiled(self, x: torch.Tensor, tile: int, pad: int) -> torch.Tensor:
        h, w = x.shape[-2:]
        s = self.native
        out = None
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                bottom, right = min(top + tile, h), min(left + tile, w)
                t0, l0 = max(top - pad, 0), max(left - pad, 0)
                t1, l1 = min(bottom + pad, h), min(right + pad, w)
                y = self.model(x[..., t0:t1, l0:l1])  # (B, C, s*(t1-t0), s*(l1-l0))
                if out is None:
                    out = y.new_empty(*y.shape[:2], round(h * s), round(w * s))
                oy, ox = round((top - t0) * s), round((left - l0) * s)
                hh, ww = round((bottom - top) * s), round((right - left) * s)
                out[..., round(top * s) : round(top * s) + hh, round(left * s) : round(left * s) + ww] = y[
                    ..., oy : oy + hh, ox : ox + ww
                ]
        assert out is not None
        return out


def tiles_needed(h: int, w: int, tile: int) -> int:
    """Number of tiles a frame of h×w is cut into."""
    if not tile:
        return 1
    return math.ceil(h / tile) * math.ceil(w / tile)
