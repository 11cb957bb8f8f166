"""Blind per-scene SR-kernel estimation with KernelGAN (Bell-Kligler, Shocher & Irani, 2019).

KernelGAN learns the SR kernel of a low-resolution (LR) image from that image alone: a deep
*linear* generator G downscales LR crops ×2 and a patch discriminator D (7×7 receptive
field) learns to tell G's patches from the LR image's own. When D cannot, G's composed
filters are the image's ×2 SR kernel ``k2``; the ×4 kernel is ``k2 * dilate2(k2)``
(:func:`~vsr_pipeline.degrade.kernels.compose_x4`). For video, one kernel is estimated per
scene, from crops drawn across the scene's frames.

Kernel convention: the kernel is the whole SR kernel in the KernelGAN/DIV2KRK sense —
correlate, then keep every s-th pixel — exactly what ``parse_degradation('estimate', s)``
expects, and its centre of mass sits at ``anchor + (s - 1) / 2`` like a DIV2KRK kernel.

The reference recipe (``KernelGANConfig()``): G = conv 7×7, 5×5, 3×3 and three 1×1, 64
channels, no biases or activations, stride 2 in the last layer; D = spectrally normalised
7×7 conv followed by six 1×1 convs (batch norm and ReLU between, sigmoid at the end); LSGAN
with the L1 norm; 3000 iterations of one G and one D step with Adam(0.5, 0.999), lr 2e-4
divided by 10 every 750 iterations; 64×64 crops for G and crops of G's output size for D,
drawn with probability proportional to their gradient content; G pulled towards bicubic
downscaling until it gets there, then that pull decays ×0.01 every 200 iterations and the
sparsity and centre constraints come in (as the authors' code schedules them); regularisers
α=0.5 (sum to 1), β=0.5 (boundaries), γ=5 (sparsity), δ=1 (centre of mass).

Implementation note: because G is linear and has no biases, ``G(x) = (x ⋆ k)↓2`` with
``k`` the composition of its filters (13×13). Each step computes ``k`` from G's weights
(a delta pushed through the layers) and applies it as one strided convolution; the
gradients reach every layer's weights through ``k``, so the optimisation is exactly that of
the layered network (same parameters, same loss, same gradients) at a fraction of the
cost. :meth:`DeepLinearGenerator.forward` runs the layers one by one and tests check the
two agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.adapt import spectral_kernel
from vsr_pipeline.adapt.spectral_kernel import SpectralConfig
from vsr_pipeline.degrade.kernels import compose_x4, normalize_kernel, stride_offset
from vsr_pipeline.degrade.operator import Degradation, parse_degradation
from vsr_pipeline.degrade.resize import imresize, resize_matrix
from vsr_pipeline.errors import ConfigError

__all__ = [
    "KernelGANConfig",
    "KernelEstimate",
    "KernelEstimator",
    "DeepLinearGenerator",
    "PatchDiscriminator",
    "estimate_kernel",
    "estimate_scene_kernel",
    "estimate_with",
    "SpectralConfig",
    "bicubic_kernel",
    "sum_to_one_loss",
    "boundaries_loss",
    "sparsity_loss",
    "centre_loss",
    "boundary_mask",
    "centre_of_mass",
    "kernel_covariance",
    "postprocess_kernel",
    "kernel_error",
    "kernel_orientation",
    "kernel_image",
    "SCALES",
]

log = logging.getLogger(__name__)

SCALES = (2, 4)  # KernelGAN estimates k2; k4 is derived from it


@dataclass(frozen=True)
class KernelGANConfig:
    """KernelGAN settings. The defaults are the published recipe; :meth:`fast` is ours."""

    iterations: int = 3000  # G+D steps (the paper: 3000)
    batch: int = 1  # crops per step for G and for D (the paper: 1)
    g_crop: int = 64  # side of the LR crops G downscales (px)
    g_channels: int = 64  # width of G's hidden layers
    g_kernels: tuple[int, ...] = (7, 5, 3, 1, 1, 1)  # G's filter sizes; the kernel is sum(k - 1) + 1 = 13 wide
    d_channels: int = 64  # width of D's layers
    d_kernel: int = 7  # D's first filter = its receptive field (px)
    d_layers: int = 7  # D's conv layers: one d_kernel×d_kernel, then 1×1s
    lr: float = 2e-4  # Adam learning rate of G and D
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas
    lr_decay_every: int = 750  # divide the learning rates by lr_decay_factor this often (iterations)
    lr_decay_factor: float = 10.0  # the paper's ×0.1
    alpha: float = 0.5  # weight of the sum-to-1 term
    beta: float = 0.5  # weight of the boundaries term
    gamma: float = 5.0  # weight of the sparsity term, once constraints are in
    delta: float = 1.0  # weight of the centre-of-mass term, once constraints are in
    bicubic_weight: float = 5.0  # initial weight of ||G(x) - bicubic(x)||^2
    bicubic_reached: float = 0.4  # G counts as bicubic-like below this MSE ([-1, 1] images), 3 times running
    bicubic_decay_every: int = 200  # then divide the bicubic weight by bicubic_decay this often (iterations)
    bicubic_decay: float = 100.0  # divisor of the bicubic weight
    bicubic_min: float = 5e-6  # floor of the bicubic weight
    constraints_below: float = 5e-3  # sparsity and centre terms start once the bicubic weight is below this
    boundary_penalty: float = 30.0  # height of the boundary mask at the kernel's corners
    sparsity_power: float = 0.2  # exponent of |k| in the sparsity term (authors' code; the paper writes 1/2)
    d_noise: float = 1.0 / 255  # std of the Gaussian noise added to D's inputs ([0, 1] units)
    keep_largest: int = 40  # post-processing: keep the kernel's n largest values (the authors' n_filtering)
    max_frames: int = 8  # frames of a scene crops are drawn from (evenly spaced); bounds memory
    min_gradient: float = 2e-3  # mean clipped gradient magnitude ([0, 1] units) below which a scene is "flat"
    early_stop: bool = False  # stop when the kernel stops changing (fast mode)
    check_every: int = 50  # iterations between convergence checks
    converged_tol: float = 0.02  # L1 change of the normalised kernel between checks that counts as converged
    min_iterations: int = 0  # never stop before this many iterations
    seed: int = 0  # weights init and crop draws; same seed, same kernel
    threads: int = 1  # torch intra-op threads while training (tiny tensors: more only add overhead); 0 = as set

    def __post_init__(self) -> None:
        for name in ("iterations", "batch", "g_crop", "g_channels", "d_channels", "d_kernel", "check_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"KernelGAN setting {name} must be a positive integer, got {value!r}.")
        if any(k < 1 or k % 2 == 0 for k in self.g_kernels) or len(self.g_kernels) < 2:
            raise ConfigError(f"KernelGAN g_kernels must be two or more odd sizes, got {self.g_kernels!r}.")
        if self.d_layers < 2:
            raise ConfigError(f"KernelGAN d_layers must be at least 2, got {self.d_layers!r}.")
        if self.g_crop < self.kernel_size + 2 * self.d_kernel:
            raise ConfigError(
                f"KernelGAN g_crop={self.g_crop} is too small for a {self.kernel_size}-px kernel and a "
                f"{self.d_kernel}-px discriminator; use at least {self.kernel_size + 2 * self.d_kernel}."
            )

    @property
    def kernel_size(self) -> int:
        """Side of the ×2 kernel G expresses (13 for the paper's G)."""
        return sum(k - 1 for k in self.g_kernels) + 1

    @property
    def d_crop(self) -> int:
        """Side of D's real crops: the size of G's output on a g_crop crop (26 for 64)."""
        return (self.g_crop - self.kernel_size) // 2 + 1

    @classmethod
    def reference(cls, **overrides) -> KernelGANConfig:
        """The published recipe (3000 iterations, one crop per step)."""
        return cls(**overrides)

    @classmethod
    def fast(cls, **overrides) -> KernelGANConfig:
        """Our fast mode: the recipe's first 700 iterations, a last lr drop at 600, early stop.

        The recipe moves its kernel mostly in its first 750 iterations (after that the lr is
        ÷10, then ÷100); this runs that part unchanged — same lr, same bicubic pull, same
        constraints from the same iteration — drops the lr at 600 to settle, and stops
        (never before iteration 500) once the normalised kernel moves less than
        ``converged_tol`` (L1) over ``check_every`` iterations: at most 700/3000 of the work.
        """
        base = dict(
            iterations=700,
            lr_decay_every=600,
            early_stop=True,
            check_every=25,
            converged_tol=0.02,
            min_iterations=500,
        )
        base.update(overrides)
        return cls(**base)

    def with_iterations(self, iterations: int) -> KernelGANConfig:
        """This config run for ``iterations`` steps, the schedule scaled to the new length."""
        r = iterations / self.iterations
        return dataclasses.replace(
            self,
            iterations=int(iterations),
            lr_decay_every=max(1, round(self.lr_decay_every * r)),
            bicubic_decay_every=max(1, round(self.bicubic_decay_every * r)),
            min_iterations=min(self.min_iterations, int(iterations)),
        )


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


def centre_of_mass(k: torch.Tensor) -> torch.Tensor:
    """(row, col) centre of mass of a (kh, kw) kernel, in pixel indices (differentiable)."""
    rows = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    cols = torch.arange(k.shape[1], dtype=k.dtype, device=k.device)
    total = k.sum()
    return torch.stack(((k.sum(1) * rows).sum() / total, (k.sum(0) * cols).sum() / total))


def kernel_covariance(k: np.ndarray | torch.Tensor) -> np.ndarray:
    """The 2×2 covariance (px²) of a kernel's (non-negative) mass about its centre of mass; (row, col) order."""
    k = np.clip(np.asarray(torch.as_tensor(k).detach().cpu().double().numpy()), 0.0, None)
    k = k / k.sum()
    rows, cols = np.mgrid[0 : k.shape[0], 0 : k.shape[1]].astype(np.float64)
    r0, c0 = (k * rows).sum(), (k * cols).sum()
    dr, dc = rows - r0, cols - c0
    return np.array([[(k * dr * dr).sum(), (k * dr * dc).sum()], [(k * dr * dc).sum(), (k * dc * dc).sum()]])


def centre_loss(k: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Mean squared distance (px²) of k's centre of mass from ``anchor + (scale - 1) / 2``.

    That target is where a stride-``scale`` SR kernel must sit to keep the image in place
    (DIV2KRK's and KernelGAN's convention).
    """
    target = torch.tensor(
        [k.shape[0] // 2 + stride_offset(scale), k.shape[1] // 2 + stride_offset(scale)], dtype=k.dtype, device=k.device
    )
    return ((centre_of_mass(k) - target) ** 2).mean()


# --- kernels: post-processing, bicubic, comparison ---------------------------------------------
def _shift(k: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Shift a 2-D array by a sub-pixel amount (bilinear, zeros outside)."""
    from scipy.ndimage import shift

    return shift(k, (dy, dx), order=1, mode="constant", cval=0.0)


def postprocess_kernel(k: np.ndarray | torch.Tensor, scale: int = 2, keep_largest: int = 40) -> np.ndarray:
    """Clean up a raw estimate: drop negligible taps, normalise, centre for stride ``scale``.

    Taps below 0.75 × the ``keep_largest``-th largest value are set to zero (that value is
    subtracted from the rest), as KernelGAN does; the centre of mass is then moved to
    ``anchor + (scale - 1) / 2``. Returns a float64 (kh, kw) array summing to one.
    """
    k = np.asarray(torch.as_tensor(k).detach().cpu().double().numpy())
    flat = np.sort(k.ravel())
    n = min(keep_largest, flat.size - 1)
    floor = 0.75 * flat[-n - 1]
    k = np.clip(k - floor, 0.0, None)
    if k.sum() <= 0:
        raise ValueError("the kernel has no positive mass")
    k = k / k.sum()
    want = np.array(k.shape) // 2 + stride_offset(scale)
    for _ in range(4):  # mass shifted off the canvas moves the centre again: repeat until it sits
        com = centre_of_mass(torch.from_numpy(k)).numpy()
        if np.abs(want - com).max() < 1e-3:
            break
        k = np.clip(_shift(k, *(want - com)), 0.0, None)
        k = k / k.sum()
    return k


def bicubic_kernel(scale: int) -> np.ndarray:
    """MATLAB's antialiased bicubic ×``scale`` downscaling as a 2-D stride SR kernel (odd size, sum 1).

    Correlating with it and keeping every ``scale``-th pixel equals ``imresize(x, 1/scale)``
    away from the borders; its centre of mass is at ``anchor + (scale - 1) / 2``.
    """
    s = int(scale)
    n = 16 * s
    row = resize_matrix(n, n // s, 1.0 / s)[n // (2 * s)].numpy()  # (n,) weights of one output pixel
    j = n // (2 * s)
    nz = np.nonzero(np.abs(row) > 1e-12)[0]
    reach = int(max(s * j - nz.min(), nz.max() - s * j))
    taps = np.zeros(2 * reach + 1)
    for i in nz:
        taps[i - s * j + reach] = row[i]
    k = np.outer(taps, taps)
    return k / k.sum()


def _centred(k: np.ndarray, size: int) -> np.ndarray:
    """Centre of mass moved to the middle of a (size, size) canvas (float64, sum 1)."""
    canvas = np.zeros((size, size))
    kh, kw = k.shape
    oy, ox = (size - kh) // 2, (size - kw) // 2
    canvas[oy : oy + kh, ox : ox + kw] = k
    com = centre_of_mass(torch.from_numpy(canvas)).numpy()
    out = _shift(canvas, (size - 1) / 2 - com[0], (size - 1) / 2 - com[1])
    return out / out.sum()


def kernel_error(estimate: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> float:
    """Relative L2 error ||k̂ - k|| / ||k|| after centring both on a common canvas."""
    a = normalize_kernel(torch.as_tensor(np.asarray(estimate))).numpy()
    b = normalize_kernel(torch.as_tensor(np.asarray(truth))).numpy()
    size = max(a.shape + b.shape) + 4
    ca, cb = _centred(a, size), _centred(b, size)
    return float(np.linalg.norm(ca - cb) / np.linalg.norm(cb))


def kernel_orientation(k: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """(theta, elongation) of a kernel's second moments: theta in [0, π) from +x towards +y.

    ``elongation`` is the ratio of the larger to the smaller covariance eigenvalue (1 = round).
    """
    k = np.clip(np.asarray(torch.as_tensor(np.asarray(k)).double()), 0.0, None)
    k = k / k.sum()
    yy, xx = np.mgrid[0 : k.shape[0], 0 : k.shape[1]].astype(np.float64)
    my, mx = (k * yy).sum(), (k * xx).sum()
    cxx = (k * (xx - mx) ** 2).sum()
    cyy = (k * (yy - my) ** 2).sum()
    cxy = (k * (xx - mx) * (yy - my)).sum()
    theta = 0.5 * math.atan2(2 * cxy, cxx - cyy) % math.pi
    tr, det = cxx + cyy, cxx * cyy - cxy**2
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    lo = max(tr / 2 - disc, 1e-12)
    return theta, (tr / 2 + disc) / lo


def kernel_image(k: np.ndarray | torch.Tensor, cell: int = 12, vmax: float | None = None) -> np.ndarray:
    """Render a kernel as an (kh·cell, kw·cell, 3) uint8 RGB picture (viridis, 0 to ``vmax``).

    ``vmax`` defaults to the kernel's largest value; give the same one to compare kernels.
    """
    from matplotlib import colormaps

    a = np.asarray(torch.as_tensor(np.asarray(k)).double())
    top = float(a.max()) if vmax is None else float(vmax)
    norm = np.clip(a / top, 0.0, 1.0) if top > 0 else np.zeros_like(a)
    rgb = (colormaps["viridis"](norm)[..., :3] * 255 + 0.5).astype(np.uint8)  # (kh, kw, 3)
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)


# --- crops ----------------------------------------------------------------------------------
def _gradient_map(gray: torch.Tensor) -> torch.Tensor:
    """(H, W) gradient magnitude, clipped at its 97th percentile so that a few edges do not rule."""
    gy, gx = torch.gradient(gray)
    mag = torch.sqrt(gx**2 + gy**2)
    cap = torch.quantile(mag.flatten()[:: max(1, mag.numel() // 1_000_000)], 0.97)
    return mag.clamp(max=float(cap))


def _crop_scores(grad: torch.Tensor, crop: int, even: bool) -> torch.Tensor:
    """(H - crop + 1, W - crop + 1) mean gradient inside each crop (by top-left corner)."""
    s = F.avg_pool2d(grad[None, None], crop, stride=1)[0, 0]
    if even:  # G's crops start on even pixels so that the stride-2 phase is the same in all
        keep = torch.zeros_like(s)
        keep[::2, ::2] = 1
        s = s * keep
    return s


class _CropSampler:
    """Draws crops for G and D across a scene's frames, with probability ∝ gradient content."""

    def __init__(self, frames: torch.Tensor, config: KernelGANConfig, rng: np.random.Generator) -> None:
        self.frames = frames * 2 - 1  # (T, 3, H, W) in [-1, 1], the authors' range
        self.rng = rng
        self.g, self.d = config.g_crop, config.d_crop
        gray = frames.mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)  # (T, H, W)
        d_scores, g_scores = [], []
        for t in range(gray.shape[0]):
            d_scores.append(_crop_scores(_gradient_map(gray[t]), self.d, even=False))
            # G's crops: where the ×2-downscaled frame (what G makes) has detail, mapped back up.
            small = imresize(gray[t][None].double(), 0.5)[0].float()
            up = _gradient_map(small).repeat_interleave(2, 0).repeat_interleave(2, 1)
            up = F.pad(up, (0, gray.shape[2] - up.shape[1], 0, gray.shape[1] - up.shape[0]))
            g_scores.append(_crop_scores(up, self.g, even=True))
        self.mean_gradient = float(torch.stack([_gradient_map(g).mean() for g in gray]).mean())
        self.d_prob = self._prob(torch.stack(d_scores))
        self.g_prob = self._prob(torch.stack(g_scores))

    @staticmethod
    def _prob(scores: torch.Tensor) -> tuple[np.ndarray, tuple[int, ...]] | None:
        flat = scores.flatten().double().numpy()
        total = flat.sum()
        if not (total > 0 and math.isfinite(total)):
            return None
        return flat / total, tuple(scores.shape)

    def _draw(self, prob, size: int, n: int) -> torch.Tensor:
        p, shape = prob
        idx = self.rng.choice(p.size, size=n, p=p)
        t, y, x = np.unravel_index(idx, shape)
        return torch.stack([self.frames[ti, :, yi : yi + size, xi : xi + size] for ti, yi, xi in zip(t, y, x)])

    def g_batch(self, n: int) -> torch.Tensor:
        """(n, 3, g, g) crops for G, in [-1, 1]."""
        return self._draw(self.g_prob, self.g, n)

    def d_batch(self, n: int) -> torch.Tensor:
        """(n, 3, d, d) crops for D, in [-1, 1]."""
        return self._draw(self.d_prob, self.d, n)


# --- the estimate -------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelEstimate:
    """A scene's SR kernel, or the bicubic kernel with the reason when estimation was not possible."""

    kernel: np.ndarray  # (k, k) float64, sum 1: the ×scale SR kernel (correlate, keep every scale-th pixel)
    kernel_x2: np.ndarray  # (13, 13) float64, sum 1: KernelGAN's ×2 kernel (bicubic's on fallback)
    scale: int  # SR factor the kernel is for (2 or 4)
    fallback_reason: str | None = None  # why bicubic is used instead, None when estimated
    iterations: int = 0  # steps run (fewer than configured when stopped early)
    seconds: float = 0.0  # wall time of the estimate

    @property
    def fallback(self) -> bool:
        """True when this is the bicubic fallback, not an estimate."""
        return self.fallback_reason is not None

    def degradation(self) -> Degradation:
        """The operator A' for this scene: ``estimate`` resolved to the kernel, or plain bicubic."""
        if self.fallback:
            return parse_degradation("bicubic", self.scale)
        return parse_degradation("estimate", self.scale).with_kernel(torch.from_numpy(self.kernel))


def _as_frames(frames) -> torch.Tensor:
    """A (3, H, W) tensor, a (T, 3, H, W) tensor, or a sequence of (3, H, W) tensors/Frames -> (T, 3, H, W)."""
    if torch.is_tensor(frames):
        t = frames[None] if frames.ndim == 3 else frames
    else:
        items = [f.rgb if hasattr(f, "rgb") else torch.as_tensor(f) for f in frames]
        if not items:
            raise ConfigError("Kernel estimation needs at least one frame, got none.")
        if len({tuple(f.shape) for f in items}) != 1:
            raise ConfigError("Kernel estimation needs frames of one size; the scene's frames differ in size.")
        t = torch.stack(items)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ConfigError(f"Kernel estimation needs RGB frames (T, 3, H, W), got shape {tuple(t.shape)}.")
    return t.detach().float().cpu()


def _pick(frames: torch.Tensor, n: int) -> torch.Tensor:
    """At most ``n`` frames, evenly spaced over the scene."""
    if frames.shape[0] <= n:
        return frames
    idx = np.linspace(0, frames.shape[0] - 1, n).round().astype(int)
    return frames[idx]


X4_WARNING = (
    "KernelGAN's x4 kernel estimates are not reliable yet: on the benchmark clips they came out much wider than "
    "the true blur, and adapting with them lost 3.7 dB on average against the bicubic assumption "
    "(see docs/kernel-estimation.md); prefer the spectral method (the default), bicubic or a known kernel at x4."
)


def _check_scale(scale) -> int:
    if scale not in SCALES and not (isinstance(scale, float) and scale.is_integer() and int(scale) in SCALES):
        raise ConfigError(f"KernelGAN estimates kernels for scale 2 or 4, got {scale!r}.")
    return int(scale)


def _finish(k2: np.ndarray, scale: int, **kw) -> KernelEstimate:
    if scale == 2:
        k = k2
    else:
        big = compose_x4(k2).numpy()  # (3k - 2, 3k - 2); its outer ring holds almost nothing
        c = k2.shape[0] // 2
        k = big[c:-c, c:-c]
        k = k / k.sum()
    return KernelEstimate(kernel=k, kernel_x2=k2, scale=scale, **kw)


def _fallback(scale: int, reason: str, seconds: float = 0.0, iterations: int = 0) -> KernelEstimate:
    log.warning("Kernel estimation falls back to bicubic: %s", reason)
    k = bicubic_kernel(scale)
    return KernelEstimate(
        kernel=k, kernel_x2=bicubic_kernel(2), scale=scale, fallback_reason=reason, iterations=iterations, seconds=seconds
    )


def estimate_kernel(frames, scale: int = 2, config: KernelGANConfig = KernelGANConfig()) -> KernelEstimate:
    """Estimate the SR kernel of LR ``frames`` (one scene) with KernelGAN; no caching.

    Args:
        frames: the scene's LR frames, RGB float in [0, 1]: a (3, H, W) or (T, 3, H, W)
            tensor, or a sequence of (3, H, W) tensors or reader Frames. At most
            ``config.max_frames`` of them (evenly spaced) supply the crops.
        scale: 2 or 4; the ×4 kernel is derived from the ×2 one.
        config: the recipe (:class:`KernelGANConfig`; ``KernelGANConfig.fast()`` for ours).

    Returns:
        A :class:`KernelEstimate`. When the frames are smaller than the crops, the scene is
        flat, or training diverges, it holds the bicubic kernel and ``fallback_reason``
        (and a warning is logged) instead of raising.
    """
    scale = _check_scale(scale)
    if scale == 4:
        log.warning(X4_WARNING)
    start = time.perf_counter()
    x = _pick(_as_frames(frames), config.max_frames)  # (T, 3, H, W)
    h, w = x.shape[-2:]
    if min(h, w) < config.g_crop:
        return _fallback(
            scale, f"the frames are {w}x{h}, smaller than the {config.g_crop}x{config.g_crop} crops KernelGAN trains on"
        )
    if not torch.isfinite(x).all():
        return _fallback(scale, "the frames hold NaN or infinite values")
    rng = np.random.default_rng(config.seed)
    sampler = _CropSampler(x, config, rng)
    if sampler.mean_gradient < config.min_gradient or sampler.g_prob is None or sampler.d_prob is None:
        return _fallback(
            scale,
            f"the scene is flat (mean gradient {sampler.mean_gradient:.2g} < {config.min_gradient:g}), "
            "so it holds no detail to learn a blur from",
        )
    threads = torch.get_num_threads()
    try:
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            raw, iterations, reason = _train(sampler, config)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    if reason is None:
        try:
            k2 = postprocess_kernel(raw, 2, config.keep_largest)
        except ValueError as exc:
            reason = f"training diverged ({exc})"
    if reason is not None:
        return _fallback(scale, reason, seconds, iterations)
    return _finish(k2, scale, iterations=iterations, seconds=seconds)


def _train(sampler: _CropSampler, cfg: KernelGANConfig) -> tuple[np.ndarray | None, int, str | None]:
    """KernelGAN's training loop. Returns (raw ×2 kernel, iterations run, failure reason or None)."""
    G = DeepLinearGenerator(cfg.g_kernels, cfg.g_channels)
    D = PatchDiscriminator(cfg.d_kernel, cfg.d_channels, cfg.d_layers)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    mask = boundary_mask(cfg.kernel_size, cfg.boundary_penalty).float()
    shave = (cfg.g_crop // 2 - cfg.d_crop) // 2  # bicubic output (g/2) vs G's valid output (d_crop)
    w_bic, w_sparse, w_centre = cfg.bicubic_weight, 0.0, 0.0
    bic_hits, like_bicubic = 0, False
    last_k, it = None, 0
    for it in range(cfg.iterations):
        if it and it % cfg.lr_decay_every == 0:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] /= cfg.lr_decay_factor
        g_in = sampler.g_batch(cfg.batch)  # (B, 3, 64, 64)
        d_real = sampler.d_batch(cfg.batch)  # (B, 3, 26, 26)

        # G step: fool D, stay a plausible kernel (and close to bicubic at first).
        opt_g.zero_grad(set_to_none=True)
        k = G.kernel()  # (13, 13)
        fake = G.downscale(g_in, k)  # (B, 3, 26, 26)
        loss_gan = (D(fake) - 1).abs().mean()
        with torch.no_grad():
            bic = imresize(g_in, 0.5)[..., shave : shave + cfg.d_crop, shave : shave + cfg.d_crop]
        loss_bic = F.mse_loss(fake, bic)
        reg = (
            w_bic * loss_bic
            + cfg.alpha * sum_to_one_loss(k)
            + cfg.beta * boundaries_loss(k, mask)
            + w_sparse * sparsity_loss(k, cfg.sparsity_power)
            + w_centre * centre_loss(k, 2)
        )
        (loss_gan + reg).backward()
        opt_g.step()

        # D step: real crops -> 1, G's (noisy, detached) output -> 0.
        opt_d.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = G.downscale(g_in)
        noise = 2 * cfg.d_noise  # [0, 1] noise std in the [-1, 1] range
        d_fake = D(fake + noise * torch.randn_like(fake))
        d_true = D(d_real + noise * torch.randn_like(d_real))
        loss_d = 0.5 * ((d_true - 1).abs().mean() + d_fake.abs().mean())
        loss_d.backward()
        opt_d.step()

        if not (torch.isfinite(loss_gan) and torch.isfinite(loss_d) and torch.isfinite(k).all()):
            return None, it + 1, f"training diverged (NaN at iteration {it + 1})"

        # The authors' schedule: pull towards bicubic until reached, then let go and add constraints.
        if not like_bicubic:
            bic_hits = bic_hits + 1 if loss_bic.item() < cfg.bicubic_reached else 0
            like_bicubic = bic_hits >= 3
        elif it % cfg.bicubic_decay_every == 0 and w_bic > cfg.bicubic_min:
            w_bic = max(w_bic / cfg.bicubic_decay, cfg.bicubic_min)
            if w_sparse == 0.0 and w_bic < cfg.constraints_below:
                w_sparse, w_centre = cfg.gamma, cfg.delta

        if cfg.early_stop and (it + 1) % cfg.check_every == 0:
            kn = k.detach().double()
            kn = kn / kn.sum()
            if last_k is not None and it + 1 >= cfg.min_iterations and w_sparse > 0:
                change = float((kn - last_k).abs().sum())
                if change < cfg.converged_tol:
                    log.info("KernelGAN: kernel converged after %d iterations (change %.4f)", it + 1, change)
                    break
            last_k = kn
    with torch.no_grad():
        k = G.kernel().double()
    if not torch.isfinite(k).all():
        return None, it + 1, "training diverged (the kernel holds NaN)"
    if not (0.5 < float(k.sum()) < 2.0):  # normalised afterwards; far from 1 means G is not there yet
        log.info("KernelGAN: the raw kernel sums to %.3g after %d iterations", float(k.sum()), it + 1)
    return k.numpy(), it + 1, None


# --- per-scene estimation with a cache ----------------------------------------------------------
def _content_key(frames: torch.Tensor, scale: int, config: KernelGANConfig | SpectralConfig) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((type(config).__name__, tuple(frames.shape), scale, dataclasses.astuple(config))).encode())
    h.update(frames.contiguous().numpy().tobytes())
    return h.hexdigest()


def estimate_with(frames, scale: int, config: KernelGANConfig | SpectralConfig) -> KernelEstimate:
    """Estimate with the method ``config`` names: :class:`SpectralConfig` or :class:`KernelGANConfig`."""
    if isinstance(config, SpectralConfig):
        return spectral_kernel.estimate_kernel_spectral(frames, scale, config)
    if isinstance(config, KernelGANConfig):
        return estimate_kernel(frames, scale, config)
    raise ConfigError(f"Kernel estimation needs a SpectralConfig or a KernelGANConfig, got {type(config).__name__}.")


class KernelEstimator:
    """Per-scene kernel estimation with a cache by content hash (memory, optionally disk).

    ``config`` picks the method: :class:`SpectralConfig` (the default: closed-form, from the
    LR power spectrum) or :class:`KernelGANConfig` (KernelGAN; ``KernelGANConfig.fast()`` or
    the published recipe). ``estimate(frames)`` returns a :class:`KernelEstimate`; the same
    frames (bit for bit) at the same scale, method and config are estimated once. ``degradation_for_scene(scene_id, frames)`` is
    what ``enhance --degradation estimate`` calls at each scene: it returns the resolved
    :class:`~vsr_pipeline.degrade.operator.Degradation` (bicubic on fallback).
    """

    def __init__(
        self,
        scale: int = 4,
        config: KernelGANConfig | SpectralConfig = SpectralConfig(),
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        max_entries: int = 64,
    ) -> None:
        self.scale = _check_scale(scale)
        if not isinstance(config, (SpectralConfig, KernelGANConfig)):
            raise ConfigError(f"Kernel estimation needs a SpectralConfig or a KernelGANConfig, got {type(config).__name__}.")
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.max_entries = max_entries
        self._memory: OrderedDict[str, KernelEstimate] = OrderedDict()
        self._scenes: dict[object, KernelEstimate] = {}
        self.hits = 0  # estimates answered from the cache
        self.misses = 0  # estimates computed

    def estimate(self, frames) -> KernelEstimate:
        """The scene's :class:`KernelEstimate`, from the cache when these frames were seen before."""
        x = _pick(_as_frames(frames), self.config.max_frames)
        key = _content_key(x, self.scale, self.config)
        found = self._memory.get(key) or self._load(key)
        if found is not None:
            self.hits += 1
            self._remember(key, found)
            return found
        self.misses += 1
        result = estimate_with(x, self.scale, self.config)
        self._remember(key, result)
        self._store(key, result)
        return result

    def degradation_for_scene(self, scene_id, frames) -> Degradation:
        """A' for scene ``scene_id``: estimated once per scene id (and per content), then reused."""
        result = self._scenes.get(scene_id)
        if result is None:
            result = self._scenes[scene_id] = self.estimate(frames)
        return result.degradation()

    def _remember(self, key: str, result: KernelEstimate) -> None:
        self._memory[key] = result
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_entries:
            self._memory.popitem(last=False)

    def _load(self, key: str) -> KernelEstimate | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                reason = str(z["fallback_reason"]) or None
                return KernelEstimate(
                    kernel=z["kernel"],
                    kernel_x2=z["kernel_x2"],
                    scale=int(z["scale"]),
                    fallback_reason=reason,
                    iterations=int(z["iterations"]),
                    seconds=float(z["seconds"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Ignoring unreadable kernel cache file %s (%s)", path, exc)
            return None

    def _store(self, key: str, result: KernelEstimate) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kernel-", suffix=".npz", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    kernel=result.kernel,
                    kernel_x2=result.kernel_x2,
                    scale=result.scale,
                    fallback_reason=result.fallback_reason or "",
                    iterations=result.iterations,
                    seconds=result.seconds,
                )
            os.replace(tmp, self.cache_dir / f"{key}.npz")
        except OSError as exc:
            log.warning("Could not write the kernel cache in %s (%s)", self.cache_dir, exc)
            Path(tmp).unlink(missing_ok=True)


_DEFAULT_ESTIMATORS: dict[tuple[int, KernelGANConfig | SpectralConfig], KernelEstimator] = {}


def estimate_scene_kernel(frames, scale: int = 4, config: KernelGANConfig | SpectralConfig = SpectralConfig()) -> KernelEstimate:
    """Estimate one scene's kernel, cached in memory by content hash (a process-wide cache).

    ``frames`` as for :func:`estimate_kernel`. Returns a :class:`KernelEstimate` (``.kernel``,
    ``.fallback_reason``, ``.degradation()``).
    """
    key = (_check_scale(scale), config)
    est = _DEFAULT_ESTIMATORS.get(key)
    if est is None:
        est = _DEFAULT_ESTIMATORS[key] = KernelEstimator(scale, config)
    return est.estimate(frames)
