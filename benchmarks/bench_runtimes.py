"""Runtimes side by side: torch vs ONNX Runtime vs OpenVINO, per model and frame size, in one run.

Network mode (default): each built-in network upscales one random five-frame window ×4 at
320×180 and 640×360 through the runner (``Runner(..., runtime=...)``); the runtimes take
turns, round by round (interleaved), and each figure is the median of ``--rounds`` rounds
after one warm-up pass (export and compilation are left out and printed apart). "adapted"
runs an adapted copy (weights moved by 1 %) the way online adaptation's output pass does:
the torch module itself, or the same export with the weights fed as inputs.

    python benchmarks/bench_runtimes.py --threads 2 --rounds 5

``--end-to-end``: ``vsr_pipeline.enhance`` on a ``--frames``-frame 320×180 H.264 clip
(bigbuckbunny, made as in bench_pipeline.py) at ×4, the default runtime (auto) against
``runtime="torch"``, ABBA order over ``--runs`` pairs, medians; ``--adapt online`` for the
online figure (steps in torch either way).

    python benchmarks/bench_runtimes.py --end-to-end --frames 100 --runs 2
    python benchmarks/bench_runtimes.py --end-to-end --frames 30 --runs 1 --adapt online

``--batch-jobs``: ``vsrpipe batch --jobs 2`` on ``--clips`` such clips, default vs ``--runtime torch``.

    python benchmarks/bench_runtimes.py --batch-jobs --clips 4 --frames 25 --runs 1

Prints markdown tables (the ones in docs/benchmarks.md); ``--json`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.runner import Runner
from vsr_pipeline.runtimes import usable

MODELS = ("vsrnet-x4", "vsrnet-x4-gan", "compact-x4-gan")
SIZES = ((320, 180), (640, 360))


def adapted_copy(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every weight moved by 1 %: stands in for an online-adapted copy."""
    net = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1 + 0.01 * torch.randn(p.shape, generator=gen))
    return net.eval()


def network(args) -> list[dict]:
    """s/frame per (model, size, runtime, weights), interleaved rounds, medians."""
    rows = []
    runtimes = usable(torch.device("cpu"))
    for name in args.models:
        model = load_model(name).eval()
        tuned = adapted_copy(model)
        for w, h in SIZES:
            x = torch.rand(1, 5, 3, h, w)
            runners = {rt: Runner(model, 4, RunnerConfig(device="cpu", runtime=rt)) for rt in runtimes}
            setup, ref, ref_tuned, diff = {}, runners["torch"](x), runners["torch"].run(tuned, x), {}
            for rt, r in runners.items():  # warm-up: export and compile both variants
                t0 = time.perf_counter()
                y, yt = r(x), r.run(tuned, x)
                setup[rt] = time.perf_counter() - t0
                diff[rt] = max(float((y - ref).abs().max()), float((yt - ref_tuned).abs().max()))
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for rt, r in runners.items():
                    for kind, net in (("trained", model), ("adapted", tuned)):
                        t0 = time.perf_counter()
                        r.run(net, x)
                        times.setdefault((rt, kind), []).append(time.perf_counter() - t0)
            for (rt, kind), v in times.items():
                med = statistics.median(v)
                base = statistics.median(times[("torch", kind)])
                rows.append({"model": name, "size": f"{w}x{h}", "runtime": rt, "weights": kind, "s_per_frame": med,
                             "speedup_vs_torch": base / med, "setup_s": setup[rt], "max_diff": diff[rt], "rounds": v})
                print(f"  {name} {w}x{h} {rt:11s} {kind:7s} {med:.3f} s  ×{base / med:.2f}  (setup {setup[rt]:.1f} s, "
                      f"max diff {diff[rt]:.1e})", flush=True)
    print("\n| model | LR size | runtime | trained s/frame | × torch | adapted s/frame | × torch | max diff |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["weights"] != "trained":
            continue
        a = next(q for q in rows if q["weights"] == "adapted" and (q["model"], q["size"], q["runtime"]) == (r["model"], r["size"], r["runtime"]))
        print(f"| {r['model']} | {r['size']} | {r['runtime']} | {r['s_per_frame']:.3f} | {r['speedup_vs_torch']:.2f} | "
              f"{a['s_per_frame']:.3f} | {a['speedup_vs_torch']:.2f} | {r['max_diff']:.0e} |")
    return rows


def end_to_end(args) -> dict:
    """Wall seconds of ``enhance`` with the default runtime vs torch on one clip, ABBA order."""
    import tempfile

    from bench_pipeline import make_clip

    import vsr_pipeline

    opts = {}
    if args.adapt != "none":
        opts = {"adapt": args.adapt, "guard": 0.0, "lr_search": False}  # adapt every frame: the output pass is then always an adapted copy
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "c.mp4", args.frames)
        out = Path(tmp) / "out.mp4"
        times: dict[str, list[float]] = {"auto": [], "torch": []}
        chosen = []
        for r in range(args.runs):
            for rt in (("auto", "torch") if r % 2 == 0 else ("torch", "auto")):
                t0 = time.perf_counter()
                res = vsr_pipeline.enhance(clip, out, scale=4, model=args.model, overwrite=True, runtime=rt, **opts)
                times[rt].append(time.perf_counter() - t0)
                if rt == "auto":
                    chosen.append(res.runtime)
                print(f"  run {r}: {rt:5s} {times[rt][-1]:7.1f} s  {res.runtime.get('name')}", flush=True)
    ma, mt = statistics.median(times["auto"]), statistics.median(times["torch"])
    print(f"\n| `enhance` ({args.frames} frames 320×180 → ×4, {args.model}, adapt {args.adapt}) | median s | s/frame | × torch |\n|---|---|---|---|")
    print(f"| --runtime torch | {mt:.1f} | {mt / args.frames:.3f} | 1.00 |")
    print(f"| default (auto → {chosen[-1].get('name')}) | {ma:.1f} | {ma / args.frames:.3f} | {mt / ma:.2f} |")
    return {"mode": "end-to-end", "frames": args.frames, "adapt": args.adapt, "model": args.model, "threads": torch.get_num_threads(),
            "auto_s": times["auto"], "torch_s": times["torch"], "speedup": mt / ma, "auto_choice": chosen}


def batch_jobs(args) -> dict:
    """Wall seconds of ``vsrpipe batch --jobs 2`` on ``--clips`` clips, default runtime vs torch, ABBA order."""
    import subprocess
    import sys
    import tempfile

    from bench_pipeline import make_clip

    vsrpipe = [sys.executable, "-m", "vsr_pipeline.cli"]
    times: dict[str, list[float]] = {"auto": [], "torch": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(args.clips):
            make_clip(src / f"c{i}.mp4", args.frames)
        for r in range(args.runs):
            for rt in (("auto", "torch") if r % 2 == 0 else ("torch", "auto")):
                dst = Path(tmp) / f"out-{rt}-{r}"
                cmd = [*vsrpipe, "batch", str(src), str(dst), "--jobs", "2", "--runtime", rt, "--quiet"]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True)
                times[rt].append(time.perf_counter() - t0)
                print(f"  run {r}: {rt:5s} {times[rt][-1]:7.1f} s", flush=True)
    ma, mt = statistics.median(times["auto"]), statistics.median(times["torch"])
    print(f"\n| `batch --jobs 2` ({args.clips} clips × {args.frames} frames 320×180 → ×4, vsrnet-x4) | median s | × torch |\n|---|---|---|")
    print(f"| --runtime torch | {mt:.1f} | 1.00 |")
    print(f"| default (auto) | {ma:.1f} | {mt / ma:.2f} |")
    return {"mode": "batch", "clips": args.clips, "frames": args.frames, "auto_s": times["auto"], "torch_s": times["torch"], "speedup": mt / ma}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="network mode: timed rounds per runtime")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--end-to-end", action="store_true", help="time vsr_pipeline.enhance, default runtime vs torch")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--runs", type=int, default=2, help="--end-to-end: pairs of runs (ABBA order)")
    ap.add_argument("--model", default="vsrnet-x4", help="--end-to-end: the model")
    ap.add_argument("--adapt", default="none", choices=["none", "online"], help="--end-to-end: adaptation method")
    ap.add_argument("--batch-jobs", action="store_true", help="time `vsrpipe batch --jobs 2`, default runtime vs torch")
    ap.add_argument("--clips", type=int, default=4, help="--batch-jobs: clips in the folder")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = batch_jobs(args) if args.batch_jobs else end_to_end(args) if args.end_to_end else network(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
