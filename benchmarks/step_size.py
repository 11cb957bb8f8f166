"""Step size and guard (issue 15, item 2), measured on the training clip bigbuckbunny.

Two questions, side by side in one run:

* **Does the probe find a step that moves the network when the configured rate is wrong?**
  E2's setting (Gaussian σ=2 then bicubic ×4, A' = gauss:sigma=2, vsrnet-x4, ``--adapt
  consistency``) with the default Adam rate 3e-4, a rate 10× too large (3e-3) and one 100×
  too small (3e-6), each with one fixed rate (the behaviour before the probe) and with the
  defaults (``--guard 0.02 --lr-search``).
* **Does the guard keep matched footage from getting worse?** Plain bicubic ×4 input (what
  vsrnet-x4 was trained for), ``--adapt online`` over 12 consecutive frames, against no
  adaptation.

Frames: bigbuckbunny (a training clip; bikes stays held out) 272×640 crop, frames 30, 60, 90
for the per-frame runs and 30–41 for the online runs. Usage::

    python benchmarks/step_size.py [--threads 2] [--json runs/adapt/step_size.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from eval_heldout import build
from reproduce_finetuning import TRAIN_SAMPLE, load_bigbuckbunny, lr_clip, run_online, run_per_frame, score, window

from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.config import AdaptConfig

ONLINE = tuple(range(30, 42))


def per_frame_rows(model, hr_all, label: str, **cfg) -> dict:
    t0 = time.perf_counter()
    rows = run_per_frame(model, hr_all, "gauss:sigma=2", 4, "consistency", TRAIN_SAMPLE,
                         AdaptConfig(method="consistency", degradation="gauss:sigma=2", **cfg), None)
    gain = sum(r["psnr_after"] - r["psnr_before"] for r in rows) / len(rows)
    steps = sum(r["steps"] for r in rows) / len(rows)
    return {"run": label, "gain_db": gain, "steps": steps, "s_per_frame": (time.perf_counter() - t0) / len(rows)}


def online_rows(model, hr_all, label: str, method: str, **cfg) -> dict:
    t0 = time.perf_counter()
    if method == "none":
        lr, hr = lr_clip(hr_all, "bicubic", 4, ONLINE)
        scores = []
        for i in ONLINE:
            with torch.no_grad():
                out = upscale(model, window(lr, i, len(hr_all)), tuple(hr.shape[-2:])).clamp(0, 1)[0]
            scores.append(score(out, hr[i], 4, None)["psnr"])
    else:
        rows = run_online(model, hr_all, "bicubic", 4, ONLINE, set(ONLINE), AdaptConfig(method="online", **cfg), None)
        scores = [r["psnr_after"] for r in rows]
    return {"run": label, "psnr": sum(scores) / len(scores), "s_per_frame": (time.perf_counter() - t0) / len(ONLINE)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--part", choices=["search", "guard", "both"], default="both")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    hr_all = load_bigbuckbunny(max(*ONLINE, *TRAIN_SAMPLE) + 3)
    model = build("vsrnet-x4").eval()
    out: dict = {}
    if args.part in ("search", "both"):
        search = []
        fixed = dict(guard=0.0, lr_search=False)  # the behaviour before the probe: one rate, no guard
        for lr in (3e-4, 3e-3, 3e-6):
            for label, extra in ((f"lr {lr:g}, fixed (--guard 0 --no-lr-search)", fixed), (f"lr {lr:g}, defaults (probe)", {})):
                search.append(per_frame_rows(model, hr_all, label, lr=lr, **extra))
                print(json.dumps(search[-1]), file=sys.stderr, flush=True)
        out["search"] = search
        print("\n**E2 setting on bigbuckbunny 30/60/90 (consistency)**\n\n| run | Δ Y-PSNR dB | steps/frame | s/frame |\n|---|---|---|---|")
        for r in search:
            print(f"| {r['run']} | {r['gain_db']:+.2f} | {r['steps']:.1f} | {r['s_per_frame']:.1f} |")
    if args.part in ("guard", "both"):
        guard = [
            online_rows(model, hr_all, "none", "none"),
            online_rows(model, hr_all, "online, fixed (--guard 0 --no-lr-search)", "online", guard=0.0, lr_search=False),
            online_rows(model, hr_all, "online, --guard 0.02 --no-lr-search", "online", guard=0.02, lr_search=False),
            online_rows(model, hr_all, "online, defaults (--guard 0.02 --lr-search)", "online"),
        ]
        out["guard"] = guard
        base = guard[0]["psnr"]
        print("\n**Matched footage (bicubic ×4) on bigbuckbunny 30–41 (online)**\n\n| run | Y-PSNR dB | Δ vs none | s/frame |\n|---|---|---|---|")
        for r in guard:
            print(f"| {r['run']} | {r['psnr']:.3f} | {r['psnr'] - base:+.3f} | {r['s_per_frame']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
