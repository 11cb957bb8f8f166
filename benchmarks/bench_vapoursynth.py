"""VapourSynth filter vs `vsrpipe enhance`: throughput on the same clip, model and threads, side by side.

Rows (medians over --runs, interleaved so that every row sees the same machine load):
  enhance      `vsrpipe enhance` of the first N frames to x264 (crf 18, medium)
  vspipe|x264  `vspipe -c y4m examples/enhance.vpy - | ffmpeg ... libx264` (the same encode)
  vspipe       `vspipe -c y4m examples/enhance.vpy /dev/null` (no encode)
with the default model and without/with `--adapt online`. fps counts frames over the wall
time of the whole command (start-up, analysis and model loading included).
Usage: `.venv/bin/python benchmarks/bench_vapoursynth.py [--frames 20] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vsr_pipeline.io.encoding import find_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: str | list[str], shell: bool = False) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=shell, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clip", default=str(ROOT / "examples" / "sample.mp4"))
    args = ap.parse_args()
    fps = 25.0  # the sample clip's rate: --duration picks the same frames as vspipe --end
    ffmpeg = find_ffmpeg()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for adapt in ("none", "online"):
            extra = [] if adapt == "none" else ["--adapt", "online"]
            vs_args = f"-a input={args.clip} -a adapt={adapt}"
            cmds = {
                f"enhance ({adapt})": [str(BIN / "vsrpipe"), "enhance", args.clip, f"{tmp}/o.mp4", "-y", "-q",
                                       "--duration", f"{(args.frames - 0.5) / fps:.3f}", *extra],
                f"vspipe|x264 ({adapt})": f"{BIN}/vspipe -c y4m -e {args.frames - 1} {vs_args} examples/enhance.vpy - | "
                                          f"{ffmpeg} -v error -y -i - -c:v libx264 -crf 18 -preset medium {tmp}/v.mp4",
                f"vspipe ({adapt})": [str(BIN / "vspipe"), "-c", "y4m", "-e", str(args.frames - 1), *vs_args.split(),
                                      "examples/enhance.vpy", "/dev/null"],
            }
            for _ in range(args.runs):
                for name, cmd in cmds.items():
                    rows.setdefault(name, []).append(timed(cmd, shell=isinstance(cmd, str)))
    print(f"{args.frames} frames of {Path(args.clip).name}, vsrnet-x4 x4, medians of {args.runs} runs")
    print(f"{'command':<24}{'seconds':>9}{'fps':>8}{'vs enhance':>12}")
    for name, times in rows.items():
        m = statistics.median(times)
        base = statistics.median(rows[f"enhance ({name.split('(')[1]}"])
        print(f"{name:<24}{m:>9.2f}{args.frames / m:>8.2f}{base / m:>12.2f}")


if __name__ == "__main__":
    main()
