"""Speed of vsrnet-x4 on one 320×180 → 1280×720 frame on the CPU, against the CPU's conv speed.

Measured side by side in one run (the machine is shared and noisy): the median time of a
vsrnet-x4 forward pass on a five-frame 320×180 window, the GFLOP/s that implies from the
counted FLOPs (``vsrnet.flops_per_output_pixel``), and the GFLOP/s of a plain 64→64 3×3
convolution on a 320×180 feature map — the best this CPU does on the network's main layer.

Usage::

    python benchmarks/bench_vsrnet.py [--threads 2] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vsr_pipeline.models import entries, vsrnet

W, H = 320, 180


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_net() -> tuple[torch.nn.Module, str]:
    """The shipped vsrnet-x4, or a fresh one of the same architecture (same cost) if not built yet."""
    try:
        return entries.VSRNET_X4.build(), "shipped vsrnet-x4"
    except Exception:  # noqa: BLE001 - benchmark the architecture anyway
        return vsrnet.VSRNet(vsrnet.VSRNetConfig()).eval(), "vsrnet-x4 architecture, fresh weights"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    net, what = load_net()
    cfg = net.config
    window = torch.rand(1, cfg.frames, 3, H, W)
    flops = vsrnet.flops_per_output_pixel(cfg) * (cfg.scale * H) * (cfg.scale * W)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    feat = torch.rand(1, 64, H, W)
    conv_flops = 2 * 9 * 64 * 64 * H * W

    with torch.inference_mode():
        t_net = median_seconds(lambda: net(window), args.repeats)
        t_conv = median_seconds(lambda: conv(feat), args.repeats * 2)

    conv_rate = conv_flops / t_conv / 1e9
    net_rate = flops / t_net / 1e9
    rows = [
        ("network", what),
        ("threads", str(torch.get_num_threads())),
        ("frame", f"{W}x{H} -> {cfg.scale * W}x{cfg.scale * H}"),
        ("parameters", f"{vsrnet.parameter_count(net):,}"),
        ("FLOPs / output pixel", f"{vsrnet.flops_per_output_pixel(cfg):,.0f}"),
        ("GFLOP / frame", f"{flops / 1e9:.1f}"),
        ("median s / frame", f"{t_net:.3f}"),
        ("frames / s", f"{1 / t_net:.2f}"),
        ("achieved GFLOP/s (network)", f"{net_rate:.0f}"),
        ("GFLOP/s, plain 64->64 3x3 conv", f"{conv_rate:.0f}"),
        ("network / conv efficiency", f"{net_rate / conv_rate:.0%}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'quantity'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")


if __name__ == "__main__":
    main()
