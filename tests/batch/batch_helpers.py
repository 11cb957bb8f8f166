"""Shared helpers of the batch tests: run the CLI in a subprocess, decode a video for comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

CLI = "import sys; from vsr_pipeline.cli import main; main(sys.argv[1:], prog_name='vsrpipe')"


def vsrpipe(*args, fault: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``vsrpipe ARGS`` in a fresh process (``fault``: a VSRPIPE_BATCH_FAULT kill point)."""
    env = {k: v for k, v in os.environ.items() if k != "VSRPIPE_BATCH_FAULT"}
    if fault:
        env["VSRPIPE_BATCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def decoded(path: Path) -> tuple[list[int], list[np.ndarray], list[tuple]]:
    """(video pts, decoded frames, side packets as (type, pts, size)) of ``path``."""
    with av.open(str(path)) as c:
        frames = [(f.pts, f.to_ndarray()) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        side = [(p.stream.type, p.pts, p.size) for p in c.demux() if p.stream.type != "video" and p.size]
    return [p for p, _ in frames], [a for _, a in frames], side


def assert_same_video(a: Path, b: Path) -> None:
    """Same frame count, timestamps, bit-identical decoded frames and the same audio/subtitle packets."""
    pa, fa, sa = decoded(a)
    pb, fb, sb = decoded(b)
    assert len(fa) == len(fb)
    assert pa == pb
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert sa == sb


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files and work folders under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def folder_of_clips(folder: Path, names: tuple[str, ...], **clip) -> Path:
    """``folder`` (created) holding a clip per name, made by ``clips.make_clip(**clip)``."""
    from clips import make_clip

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        make_clip(folder / name, **clip)
    return folder
