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

This module holds the settings, the crop sampler and the training loop; the networks and
regularisers are in :mod:`vsr_pipeline.kernels.kernelgan_nets`, the kernel helpers in
:mod:`vsr_pipeline.kernels.metrics`, and per-scene caching in :mod:`vsr_pipeline.kernels.estimate`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.kernels.base import KernelEstimate, _as_frames, _check_scale, _fallback, _finish, _gradient_map, _pick, too_small
from vsr_pipeline.kernels.kernelgan_nets import (
    DeepLinearGenerator,
    PatchDiscriminator,
    boundaries_loss,
    boundary_mask,
    centre_loss,
    sparsity_loss,
    sum_to_one_loss,
)
from vsr_pipeline.kernels.metrics import postprocess_kernel

__all__ = ["KernelGANConfig", "X4_WARNING", "estimate_kernel"]

log = logging.getLogger(__name__)


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


# --- crops ----------------------------------------------------------------------------------
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
X4_WARNING = (
    "KernelGAN's x4 kernel estimates are not reliable yet: on the benchmark clips they came out much wider than "
    "the true blur, and adapting with them lost 3.7 dB on average against the bicubic assumption "
    "(see docs/kernel-estimation.md); prefer the spectral method (the default), bicubic or a known kernel at x4."
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
        return _fallback(scale, too_small(w, h, config.g_crop, f"the {config.g_crop}x{config.g_crop} crops KernelGAN trains on"))
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
