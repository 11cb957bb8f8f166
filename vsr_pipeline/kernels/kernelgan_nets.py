"""KernelGAN's networks and regularisers (Bell-Kligler, Shocher & Irani, 2019).

G (:class:`DeepLinearGenerator`) is a deep *linear* network that downscales ×2; its
composed filters are the ×2 SR kernel. D (:class:`PatchDiscriminator`) is a patch
discriminator with a 7×7 receptive field. The regularisers keep G's kernel a plausible
one: sum to one, little mass at the boundaries, sparse, centred for stride 2. Training
lives in :mod:`vsr_pipeline.kernels.kernelgan`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.degrade.kernels import stride_offset
from vsr_pipeline.kernels.metrics import centre_of_mass

__all__ = [
    "DeepLinearGenerator",
    "PatchDiscriminator",
    "boundaries_loss",
    "boundary_mask",
    "centre_loss",
    "sparsity_loss",
    "sum_to_one_loss",
]


# --- the networks -----------------------------------------------------------------------------
class DeepLinearGenerator(nn.Module):
    """KernelGAN's G: a stack of bias-free convolutions, no activations, stride 2 at the end.

    Each colour channel is downscaled on its own (channels go to the batch axis).
    ``forward``: (N, C, H, W) -> (N, C, (H - k) // 2 + 1, (W - k) // 2 + 1), k = kernel_size.
    """

    def __init__(self, kernels: Sequence[int] = (7, 5, 3, 1, 1, 1), channels: int = 64) -> None:
        super().__init__()
        sizes = list(kernels)
        chans = [1] + [channels] * (len(sizes) - 1) + [1]
        self.layers = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], sizes[i], stride=2 if i == len(sizes) - 1 else 1, bias=False)
            for i in range(len(sizes))
        )
        self.kernel_size = sum(k - 1 for k in sizes) + 1
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight, gain=0.1)  # the authors' init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = x.reshape(n * c, 1, h, w)  # (N·C, 1, H, W)
        for layer in self.layers:
            y = layer(y)
        return y.reshape(n, c, *y.shape[-2:])  # (N, C, h', w')

    def kernel(self) -> torch.Tensor:
        """The (k, k) correlation kernel the layers compose to (differentiable, not normalised)."""
        k = self.kernel_size
        w0 = self.layers[0].weight
        delta = torch.ones(1, 1, 1, 1, dtype=w0.dtype, device=w0.device)
        y = F.conv2d(delta, w0, padding=k - 1)  # (1, ch, 2k - 1 - (k0 - 1), ...)
        for layer in self.layers[1:]:
            y = F.conv2d(y, layer.weight)  # stride 1: the kernel lives on the input grid
        # The layers correlate, so a delta comes out as the composed kernel flipped.
        return y[0, 0].flip(0, 1)  # (k, k)

    def downscale(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`forward` via the composed kernel (one strided conv): (N, C, H, W) -> (N, C, h', w')."""
        k = self.kernel() if kernel is None else kernel
        n, c, h, w = x.shape
        y = F.conv2d(x.reshape(n * c, 1, h, w), k[None, None], stride=2)  # (N·C, 1, h', w')
        return y.reshape(n, c, *y.shape[-2:])


class PatchDiscriminator(nn.Module):
    """KernelGAN's D: a spectrally normalised k×k conv, then 1×1 convs; a [0, 1] map per patch.

    ``forward``: (N, 3, H, W) -> (N, 1, H - k + 1, W - k + 1).
    """

    def __init__(self, kernel: int = 7, channels: int = 64, layers: int = 7, in_channels: int = 3) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(in_channels, channels, kernel))]
        for _ in range(layers - 2):
            blocks += [sn(nn.Conv2d(channels, channels, 1)), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        blocks += [sn(nn.Conv2d(channels, 1, 1)), nn.Sigmoid()]
        self.net = nn.Sequential(*blocks)
        for m in self.modules():  # the authors' init
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight_orig if hasattr(m, "weight_orig") else m.weight, gain=0.1)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- the regularisers -------------------------------------------------------------------------
def sum_to_one_loss(k: torch.Tensor) -> torch.Tensor:
    """|1 - Σk|: zero exactly when the (kh, kw) kernel sums to one."""
    return (1.0 - k.sum()).abs()


def boundary_mask(size: int, penalty: float = 30.0) -> torch.Tensor:
    """(size, size) weights: zero in the central region, rising towards ``penalty`` at the border.

    The rise is ``1 - exp(-d² / (2·size²))`` normalised to reach 1 at the corners (d = distance
    from the centre), so mass far out costs more the farther out it sits.
    """
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    d2 = r[:, None] ** 2 + r[None, :] ** 2
    rise = 1.0 - torch.exp(-d2 / (2.0 * size**2))
    mask = rise / rise.max()
    centre = size // 2 + size % 2  # side of the free central region
    margin = (size - centre) // 2 - 1
    if margin > 0:
        mask[margin:-margin, margin:-margin] = 0.0
    return penalty * mask


def boundaries_loss(k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean |k ⊙ m|: penalises kernel mass where the boundary mask ``m`` (same shape) is non-zero."""
    return (k * mask.to(k)).abs().mean()


def sparsity_loss(k: torch.Tensor, power: float = 0.2) -> torch.Tensor:
    """mean |k|^p (p < 1): favours few large taps over a smooth spread-out kernel."""
    return k.abs().clamp_min(1e-12).pow(power).mean()


def centre_loss(k: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Mean squared distance (px²) of k's centre of mass from ``anchor + (scale - 1) / 2``.

    That target is where a stride-``scale`` SR kernel must sit to keep the image in place
    (DIV2KRK's and KernelGAN's convention).
    """
    target = torch.tensor(
        [k.shape[0] // 2 + stride_offset(scale), k.shape[1] // 2 + stride_offset(scale)], dtype=k.dtype, device=k.device
    )
    return ((centre_of_mass(k) - target) ** 2).mean()
