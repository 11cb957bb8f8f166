"""Synthetic results for the evaluate tests: re-encoded copies of a clip and a cheap perceptual stand-in."""

from __future__ import annotations

from pathlib import Path

import torch

from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io.writer import VideoWriter


def decoded(path: Path) -> list[torch.Tensor]:
    return [f.rgb for f in VideoReader(path)]


def write_copy(src: Path, dst: Path, change=lambda rgb, i: rgb, start: float | None = None) -> Path:
    """Re-encode ``src`` (or its section from ``start``) frame by frame through ``change``."""
    info = probe(src)
    with VideoWriter(dst, info, info.display_size, EncodeOptions(crf=12)) as w:
        for f in VideoReader(src, start=start, info=info):
            w.write(change(f.rgb, f.index), f.pts, f.time_base)
    return dst


def blur_and_noise(rgb: torch.Tensor, i: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(i)
    smooth = torch.nn.functional.avg_pool2d(rgb[None], 3, 1, 1, count_include_pad=False)[0]
    return (smooth + 0.03 * torch.randn(rgb.shape, generator=g)).clamp(0, 1)
