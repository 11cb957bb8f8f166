"""Batch benchmarks: --jobs 2 vs 1, the Ray engine vs the local one, resumable segments vs a plain enhance.

    .venv/bin/python benchmarks/bench_batch.py [--repeats 3] [--clips 8] [--frames 48] [--long 600]

Clips are bigbuckbunny (a training clip, never bikes) resized and looped, made by
bench_pipeline.make_clip. The folder runs use a small VSRNet (8 features,
1 block, x2) on CPU, so they measure the batch machinery and the parallelism, not a
network; the long-clip comparison uses the shipped model (``--long-model``), as a user would.
Each figure is the median wall time of ``--repeats`` runs into a fresh output folder; Ray
is started once before timing (cluster start-up is not counted, actor start-up is).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench_pipeline import make_clip
from bench_vsrnet import median_seconds


def timed(fn, repeats: int) -> float:
    return median_seconds(fn, repeats, warmup=0)


def paired(a, b, repeats: int) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` run alternately (a, b, a, b, …), so that load drift hits both alike."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(a, 1))
        tb.append(timed(b, 1))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--long", type=int, default=600, help="frames of the long clip")
    ap.add_argument("--size", default="96x72")
    ap.add_argument("--segment", type=int, default=100, help="frames per segment of the long clip")
    ap.add_argument("--long-model", default="vsrnet-x4", help="model of the long-clip comparison (the shipped one)")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))

    from vsr_pipeline.api import make_config
    from vsr_pipeline.batch import jobs
    from vsr_pipeline.batch.resume import enhance_resumable
    from vsr_pipeline.batch.runner import BatchOptions, run_batch
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet
    from vsr_pipeline.pipeline import run_enhance

    root = Path(tempfile.mkdtemp(prefix="bench_batch."))
    model = root / "tiny.safetensors"
    save_vsrnet(VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)), model)
    src = root / "clips"
    src.mkdir()
    for i in range(args.clips):
        make_clip(src / f"clip{i}.mp4", args.frames, size=(w, h))
    long_clip = make_clip(root / "long.mp4", args.long, size=(w, h))
    config = make_config(model=str(model), scale=2, device="cpu", overwrite=True)
    runs = iter(range(10**6))

    def batch(**kw):
        result = run_batch(src, root / f"out{next(runs)}", config, BatchOptions(**kw))
        assert result.exit_code == 0, result.to_dict()

    jobs1, jobs2 = paired(lambda: batch(jobs=1), lambda: batch(jobs=2), args.repeats)
    try:
        import ray

        from vsr_pipeline.batch.ray_engine import init_local

        init_local(num_cpus=2)  # listens on 127.0.0.1 only
        ray_t = timed(lambda: batch(engine="ray", jobs=2), args.repeats)
        ray.shutdown()
    except ImportError:
        ray_t = float("nan")
    shipped = make_config(model=args.long_model, scale=4, device="cpu", overwrite=True)
    def resumable():
        jobs._stage = None  # load the model in every run, as plain enhance does
        enhance_resumable(long_clip, root / f"seg{next(runs)}.mp4", shipped, segment_frames=args.segment)

    plain, segmented = paired(lambda: run_enhance(long_clip, root / "plain.mp4", shipped), resumable, args.repeats)

    print(f"{args.clips} clips x {args.frames} frames {w}x{h} (tiny VSRNet x2); long clip {args.long} frames "
          f"({args.long_model} x4, segments of {args.segment}); median of {args.repeats}")
    print(f"{'jobs 1':>10} {'jobs 2':>10} {'ray (2)':>10} | {'enhance':>10} {'segments':>10}")
    print(f"{jobs1:9.2f}s {jobs2:9.2f}s {ray_t:9.2f}s | {plain:9.2f}s {segmented:9.2f}s")
    print(f"{'jobs2/jobs1':>14} {'ray/local(2)':>14} {'segments/plain':>16}")
    print(f"{jobs2 / jobs1:14.2f} {ray_t / jobs2:14.2f} {segmented / plain:16.2f}")


if __name__ == "__main__":
    main()
