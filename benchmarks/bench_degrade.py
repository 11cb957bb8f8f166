"""Forward+backward time of the degradation operator A' on one 1280×720 output frame at ×4.

A' sits inside every adaptation step (loss = ||A' f(y) - y||²), so its cost is quoted next
to the network's own forward+backward on the same frame. Usage:

    .venv/bin/python benchmarks/bench_degrade.py [--runs 15] [--threads 2]

``bench_model_step(model, ...)`` times a network the same way; ``main`` adds it to the table
when given ``--model NAME`` (a name from the model registry, once one is trainable).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vsr_pipeline.degrade import compose_x4, parse_degradation, random_kernel, save_kernel

OUT_H, OUT_W, SCALE = 720, 1280, 4


def _median_ms(step: Callable[[], None], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def bench_operator(spec: str, runs: int, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Median (forward ms, forward+backward ms) of A' = ``spec`` on a (1, 3, 720, 1280) frame."""
    op = parse_degradation(spec, SCALE)
    hr = torch.rand(1, 3, OUT_H, OUT_W, dtype=dtype, requires_grad=True)  # (B, C, sH, sW)
    target = torch.rand(1, 3, *op.lr_size(OUT_H, OUT_W), dtype=dtype)  # (B, C, H, W)

    def forward() -> None:
        with torch.no_grad():
            op(hr)

    def forward_backward() -> None:
        hr.grad = None
        loss = (op(hr) - target).pow(2).mean()
        loss.backward()

    return _median_ms(forward, runs), _median_ms(forward_backward, runs)


def bench_model_step(model: torch.nn.Module, runs: int, frames: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Median forward+backward ms of ``model`` making one 1280×720 frame at ×4.

    ``model`` takes (1, frames, 3, 180, 320) and returns (1, 3, 720, 1280); the loss is the
    data-consistency loss with plain bicubic A', as an adaptation step computes it.
    """
    h, w = OUT_H // SCALE, OUT_W // SCALE
    lr = torch.rand(1, frames, 3, h, w, dtype=dtype)  # (B, T, C, H, W)
    op = parse_degradation("bicubic", SCALE)
    params = [p for p in model.parameters() if p.requires_grad]

    def step() -> None:
        model.zero_grad(set_to_none=True)
        sr = model(lr)  # (B, C, sH, sW)
        loss = (op(sr) - lr[:, frames // 2]).pow(2).mean()
        if params:
            loss.backward()

    return _median_ms(step, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per row (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--model", default=None, help="also time this registered model's forward+backward")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        kfile = save_kernel(compose_x4(random_kernel(0)), Path(tmp) / "k4.npy")  # 31×31 ×4 SR kernel
        specs = [
            "bicubic",
            "gauss:sigma=2.0",
            "disk:radius=2.0",
            "gauss:sigma=2.0,down=stride",
            f"kernel:{kfile}",
        ]
        rows = [(spec.replace(str(kfile), "k4.npy (31×31)"), *bench_operator(spec, args.runs)) for spec in specs]

    print(f"A' on one {OUT_W}×{OUT_H} output frame at ×{SCALE} (float32, {args.threads} threads, "
          f"median of {args.runs})")
    print(f"{'degradation':<34}{'forward ms':>12}{'fwd+bwd ms':>12}")
    for name, fwd, fwd_bwd in rows:
        print(f"{name:<34}{fwd:>12.1f}{fwd_bwd:>12.1f}")

    if args.model:
        from vsr_pipeline.models.registry import load_model  # imported late: only needed with --model

        model = load_model(args.model, scale=SCALE)
        ms = bench_model_step(model, args.runs)
        print(f"{'network ' + args.model + ' (fwd+bwd)':<34}{'':>12}{ms:>12.1f}")
        print(f"A' (gauss:sigma=2.0) / network: {rows[1][2] / ms:.3f}")


if __name__ == "__main__":
    main()
