"""Model uncertainty by MC-dropout (Lucas et al., Sec. VI-A) and the artifact mask (Sec. VI-C).

Dropout with a tiny rate (p = 0.0005) between the residual blocks makes every forward pass
slightly different; the per-pixel variance V over N passes is high where the network is
unsure, which is where GAN artifacts sit. The mask is M = (V ≥ mean V), cleaned of
isolated pixels by a 3×3 median filter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.dropout import dropout_sites, with_mc_dropout
from vsr_pipeline.errors import ConfigError

log = logging.getLogger(__name__)


def check_dropout(model: nn.Module) -> None:
    """Raise ConfigError unless ``model`` can host MC-dropout (built in, or hooked: see :mod:`.dropout`)."""
    if dropout_sites(model) is None:
        name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        raise ConfigError(
            f"The model '{name}' cannot host MC-dropout (it has neither residual blocks nor activation layers "
            "to put dropout after), which --adapt masked needs to find artifacts; use --adapt consistency."
        )


@torch.no_grad()
def variance_map(
    model: nn.Module, windows: torch.Tensor, out_hw: tuple[int, int], *, passes: int = 50, p: float = 0.0005, seed: int = 0,
    dropout_net: nn.Module | None = None,
) -> torch.Tensor:
    """Per-pixel variance over ``passes`` stochastic forward passes: (B, T, C, H, W) -> V (B, 1, oH, oW).

    The variance is taken per channel (unbiased, over passes) and averaged over channels.
    ``model`` is not modified (a copy hosts the dropout; ``dropout_net``, made once by
    :func:`~vsr_pipeline.adapt.dropout.with_mc_dropout` with rate ``p``, saves making it per
    call); the passes are seeded.
    """
    if dropout_net is None:
        check_dropout(model)
    net = dropout_net if dropout_net is not None else with_mc_dropout(model, p)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean = m2 = None
        for k in range(1, passes + 1):  # Welford's running mean/variance: memory of one output
            out = upscale(net, windows, out_hw).double()  # (B, C, oH, oW)
            if mean is None:
                mean, m2 = out.clone(), torch.zeros_like(out)
                continue
            delta = out - mean
            mean += delta / k
            m2 += delta * (out - mean)
    finally:
        torch.random.set_rng_state(gen_state)
    return (m2 / (passes - 1)).mean(dim=1, keepdim=True).float()  # (B, 1, oH, oW)


def median_filter(mask: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Median of each ``size``×``size`` neighbourhood (replicated borders): (B, 1, H, W) -> same."""
    if size <= 1:
        return mask
    r = size // 2
    padded = F.pad(mask, (r, r, r, r), mode="replicate")
    patches = F.unfold(padded, size)  # (B, size², H·W)
    med = patches.median(dim=1).values  # (B, H·W)
    return med.reshape(mask.shape)


def artifact_mask(variance: torch.Tensor, median: int = 3) -> torch.Tensor:
    """Binary mask M = (V ≥ mean V) per image, median-filtered: (B, 1, H, W) float -> (B, 1, H, W) in {0, 1}.

    A constant variance map (e.g. p = 0, or a network without uncertainty) gives an empty
    mask: nothing is singled out.
    """
    mean = variance.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    spread = variance.amax(dim=(1, 2, 3), keepdim=True) - variance.amin(dim=(1, 2, 3), keepdim=True)
    mask = ((variance >= mean) & (spread > 0)).float()
    return median_filter(mask, median)


def save_mask_images(folder: Path | str, frame: int, variance: torch.Tensor, mask: torch.Tensor) -> None:
    """Write ``variance_{frame:06d}.png`` (high variance dark, as in the paper's figures) and ``mask_{frame:06d}.png``.

    ``variance`` and ``mask`` are (1, H, W); the variance is normalised by its 99th percentile.
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    v = variance[0].float()
    top = torch.quantile(v.flatten()[:: max(1, v.numel() // 100000)], 0.99).clamp_min(1e-20)
    v8 = (255 * (1 - (v / top).clamp(0, 1))).round().byte().cpu().numpy()
    m8 = (255 * mask[0]).round().byte().cpu().numpy()
    Image.fromarray(v8).save(folder / f"variance_{frame:06d}.png")
    Image.fromarray(m8).save(folder / f"mask_{frame:06d}.png")
