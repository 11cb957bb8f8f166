"""Real photographs (scikit-image) as small HR/LR test material, and an independent Y-PSNR."""

from __future__ import annotations

import math

import numpy as np
import torch


def y_psnr(a: torch.Tensor, b: torch.Tensor, shave: int = 4) -> float:
    """Y-PSNR (BT.601, 16–235 scale) of two RGB images (3, H, W) in [0, 1], ``shave`` px border removed."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(3, 1, 1) / 255
    ya, yb = ((x.double() * w).sum(0)[shave:-shave, shave:-shave] for x in (a, b))
    return 10 * math.log10(1.0 / float(((ya - yb) ** 2).mean()))


def photo_crop(name: str, y: int, x: int, size: int) -> torch.Tensor:
    """A size×size crop of the scikit-image photograph ``name`` as (3, size, size) in [0, 1]."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return torch.from_numpy(img[y : y + size, x : x + size].copy()).permute(2, 0, 1).float() / 255
