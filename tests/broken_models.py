"""Weights files that load but cannot give a picture, for the tests of bad models (CLI and VapourSynth)."""

from __future__ import annotations

from pathlib import Path

import torch
from spandrel.architectures.Compact import Compact


def compact_state() -> dict[str, torch.Tensor]:
    """A tiny ×2 RealESRGAN Compact network's state dict (seed 0); spandrel recognises it."""
    torch.manual_seed(0)
    return Compact(num_feat=8, num_conv=2, upscale=2).state_dict()


def nan_pth(path: Path, value: float = float("nan")) -> Path:
    """A .pth whose weights hold one ``value`` (NaN or infinity) in ``body.2.weight``."""
    state = compact_state()
    state["body.2.weight"][0, 0, 0, 0] = value
    torch.save(state, path)
    return path


def overflow_pth(path: Path) -> Path:
    """Finite weights (1e30 times a real network's) whose activations overflow to inf, then NaN."""
    torch.save({k: v * 1e30 if v.ndim == 4 else v for k, v in compact_state().items()}, path)
    return path
