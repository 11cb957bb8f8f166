"""benchmarks/bench_mlrt.py: the 15-plane wrapper vs-mlrt runs is the network itself; the whole run where vs-mlrt is installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench_loader import load_benchmark
from clips import make_clip

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_mlrt.py"


def _bench():
    return load_benchmark("bench_mlrt")


def test_planes_layout_is_the_window_frame_by_frame():
    """vs-mlrt stacks the clips' planes as channels: frame t's R, G, B are channels 3t, 3t+1, 3t+2."""
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig

    torch.manual_seed(0)
    net = VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)).eval()
    window = torch.rand(1, 5, 3, 12, 14)
    planes = torch.cat([window[:, t] for t in range(5)], dim=1)  # (1, 15, H, W) as vs-mlrt builds it
    with torch.no_grad():
        assert torch.equal(_bench().Planes(net)(planes), net(window))


def _mlrt_installed() -> bool:
    try:
        import vapoursynth as vs

        return hasattr(vs.core, "ov") and hasattr(vs.core, "ort")
    except Exception:
        return False


@pytest.mark.slow  # five processes, each loading a model
@pytest.mark.skipif(not _mlrt_installed(), reason="vs-mlrt's plugins (vapoursynth-mlrt-ov, -ort) are not installed")
def test_whole_run_on_a_tiny_clip(tmp_path: Path):
    clip = make_clip(tmp_path / "in.mp4", n=4, size=(64, 48)).path
    out = tmp_path / "mlrt.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--clip", str(clip), "--frames", "3", "--runs", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["size"] == [64, 48] and set(data["seconds"]) == {
        "vsrpipe-torch", "vsrpipe-openvino", "vsrpipe-onnxruntime", "vs-mlrt-ov", "vs-mlrt-ort"}
    assert all(len(v) == 1 and v[0] > 0 for v in data["seconds"].values())
    assert max(data["max_difference"].values()) < 1e-4  # the same network on both sides
    assert "| vs-mlrt-ort |" in proc.stdout
