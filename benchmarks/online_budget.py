"""Online adaptation on small and large frames: cost and gain with and without the step budget.

The clip: bigbuckbunny (a training clip), frames 0..N-1. For an LR size w×h the HR frames
are the centre 4w×4h crop of the 1280×720 frames; the LR input is made with ``--degradation``
(default E2's ``gauss:sigma=2`` then bicubic ×1/4, where adaptation has something to fix)
and rounded to 8 bits. vsrnet-x4 upscales five-frame windows (edges replicated) four ways,
interleaved frame by frame so that load on the shared machine hits all alike:

* ``none``: the bare :class:`~vsr_pipeline.runner.Runner`;
* ``online``: the Adapter at the defaults (probe, guard, ``budget`` 0.5);
* ``online, no budget``: the same with ``budget=0`` (two steps on every frame);
* with ``--no-probe``, both online runs also use ``guard=0, lr_search=False``;
* with ``--warmup N`` (repeat), instead of the two online runs: one per warm-up N.

Prints, per size, seconds per frame (total time / frames, the probe included), the ratio to
``none``, the steps taken, and Y-PSNR (border crop 4) of the outputs against the HR crop.

    python benchmarks/online_budget.py --size 96x72 --frames 60 --size 320x180 --frames 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from eval_heldout import build, quantize
from reproduce_finetuning import load_bigbuckbunny

from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.metrics import psnr
from vsr_pipeline.runner import Runner


def lr_clip(size: tuple[int, int], frames: int, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR (N, 3, h, w), HR (N, 3, 4h, 4w)) from the centre of bigbuckbunny's frames."""
    w, h = size
    hr = load_bigbuckbunny(frames, crop=False)  # (N, 3, 720, 1280)
    top, left = (720 - 4 * h) // 2, (1280 - 4 * w) // 2
    hr = hr[..., top : top + 4 * h, left : left + 4 * w]
    deg = parse_degradation(spec, 4)
    return torch.stack([quantize(deg(f)) for f in hr]), hr


def measure(model, size: tuple[int, int], frames: int, spec: str, no_probe: bool, warmups: list[int] | None = None) -> dict:
    lr, hr = lr_clip(size, frames, spec)
    n = len(lr)
    runner = Runner(model, 4, RunnerConfig(device="cpu"))
    extra = dict(guard=0.0, lr_search=False) if no_probe else {}
    if warmups:  # online at each warm-up, at the default budget
        paths = {f"online, warm-up {k}": Adapter(model, 4, AdaptConfig(method="online", degradation=spec, warmup=k, **extra))
                 for k in warmups}
    else:
        paths = {
            "online": Adapter(model, 4, AdaptConfig(method="online", degradation=spec, **extra)),
            "online, no budget": Adapter(model, 4, AdaptConfig(method="online", degradation=spec, budget=0.0, **extra)),
        }
    seconds = {"none": 0.0, **{k: 0.0 for k in paths}}
    scores: dict[str, list[float]] = {k: [] for k in seconds}
    for i in range(n):
        w = lr[torch.arange(i - 2, i + 3).clamp(0, n - 1)][None]
        t0 = time.perf_counter()
        out = runner(w)
        seconds["none"] += time.perf_counter() - t0
        scores["none"].append(float(psnr(quantize(out[0]), hr[i], crop=4)))
        for name, adapter in paths.items():
            t0 = time.perf_counter()
            out = adapter.process(w, [i], [0])
            seconds[name] += time.perf_counter() - t0
            scores[name].append(float(psnr(quantize(out[0]), hr[i], crop=4)))
    rows = {}
    for name in seconds:
        rows[name] = {
            "s_per_frame": seconds[name] / n,
            "ratio": seconds[name] / seconds["none"],
            "psnr": sum(scores[name]) / n,
            "steps": paths[name].report.totals()["steps"] if name in paths else 0,
        }
    return {"size": f"{size[0]}x{size[1]}", "frames": n, "degradation": spec, "probe": not no_probe, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="append", help="LR size WxH (repeat; pair each with --frames)")
    ap.add_argument("--frames", type=int, action="append", help="frames for each --size")
    ap.add_argument("--degradation", default="gauss:sigma=2")
    ap.add_argument("--no-probe", action="store_true", help="online runs without probe and guard (fixed rate)")
    ap.add_argument("--warmup", type=int, action="append", help="instead: online at the default budget with each of these warm-ups (repeat)")
    ap.add_argument("--model", default="vsrnet-x4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sizes = args.size or ["96x72", "320x180"]
    counts = args.frames or [60, 30]
    if len(counts) != len(sizes):
        ap.error("give one --frames per --size")
    torch.set_num_threads(args.threads)
    model = build(args.model).eval()
    results = []
    print("| LR size | frames | path | s/frame | × none | steps | Y-PSNR dB | Δ vs none |\n|---|---|---|---|---|---|---|---|")
    for size, frames in zip(sizes, counts):
        w, h = (int(v) for v in size.lower().split("x"))
        res = measure(model, (w, h), frames, args.degradation, args.no_probe, args.warmup)
        results.append(res)
        base = res["rows"]["none"]["psnr"]
        for name, r in res["rows"].items():
            print(f"| {w}×{h} | {res['frames']} | {name} | {r['s_per_frame']:.3f} | {r['ratio']:.2f} | {r['steps']} | "
                  f"{r['psnr']:.3f} | {r['psnr'] - base:+.3f} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
