"""Upscale one video file with the Python API (``vsr_pipeline.enhance``).

Run from the repository root:

    .venv/bin/python examples/upscale_file.py                  # quick: the first 0.4 s (10 frames) of the sample clip
    .venv/bin/python examples/upscale_file.py --full           # the whole sample clip (50 frames: ~20 s on a quiet 2-core CPU, 80 s on a busy one)
    .venv/bin/python examples/upscale_file.py in.mp4 out.mkv --full --scale 2 --crf 16

The quick run takes 10-20 s on a shared 2-core CPU, much of it starting Python and torch. The
output keeps every frame's timestamp, and audio and subtitles are copied (see docs/guide/python.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import vsr_pipeline
from vsr_pipeline.errors import VsrError

SAMPLE = Path(__file__).with_name("sample.mp4")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", nargs="?", default=str(SAMPLE), help="video to upscale [examples/sample.mp4]")
    p.add_argument("output", nargs="?", default="out/sample_x4.mp4", help="where to write it [out/sample_x4.mp4]")
    p.add_argument("--model", default="vsrnet-x4", help="registered model name or a weights file [vsrnet-x4]")
    p.add_argument("--scale", type=float, default=4, help="output scale [4]")
    p.add_argument("--crf", type=int, default=None, help="encoder quality (lower is better) [the encoder's default]")
    p.add_argument("--full", action="store_true", help="upscale the whole file, not only its first 0.4 s")
    args = p.parse_args()

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        result = vsr_pipeline.enhance(
            args.input,
            args.output,
            model=args.model,
            scale=args.scale,
            crf=args.crf,
            duration=None if args.full else 0.4,  # a section: the first 0.4 s
            overwrite=True,  # replace the output of an earlier run
        )
    except VsrError as exc:  # every user-caused failure: one sentence and an exit code (docs/troubleshooting.md)
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code

    (iw, ih), (ow, oh) = result.input_size, result.output_size
    print(f"{result.output}: {result.frames} frames, {iw}x{ih} -> {ow}x{oh} with {result.model} "
          f"on {result.device} in {result.seconds:.1f} s ({result.fps:.2f} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
