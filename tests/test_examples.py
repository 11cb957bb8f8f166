"""The runnable examples in examples/ work on the sample clip, as their docstrings say.

Each runs as a user would run it (a subprocess from the repository root) and writes into
tmp_path; the output is then checked with PyAV (frame count and size). The ones that run
the network for more than ~15 s on a 2-core CPU are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SAMPLE = EXAMPLES / "sample.mp4"  # 50 frames, 320x136, 25 fps
BIN = Path(sys.executable).parent


def run(args: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{args} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def frames_and_size(path: Path) -> tuple[int, tuple[int, int]]:
    """Frames decoded from ``path`` and their (width, height)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = sum(1 for _ in c.decode(stream))
        return n, (stream.codec_context.width, stream.codec_context.height)


def test_sample_clip_is_what_the_examples_assume():
    assert frames_and_size(SAMPLE) == (50, (320, 136))


def test_upscale_file_quick(tmp_path):
    out = tmp_path / "up.mp4"
    r = run([sys.executable, str(EXAMPLES / "upscale_file.py"), str(SAMPLE), str(out), "--model", "bicubic", "--scale", "2"])
    assert frames_and_size(out) == (10, (640, 272))  # the first 0.4 s at 25 fps
    assert "10 frames, 320x136 -> 640x272 with bicubic" in r.stdout


@pytest.mark.slow
def test_upscale_file_default_model(tmp_path):
    out = tmp_path / "sub" / "up.mkv"  # the example makes the folder
    r = run([sys.executable, str(EXAMPLES / "upscale_file.py"), str(SAMPLE), str(out)])
    assert frames_and_size(out) == (10, (1280, 544))
    assert "with vsrnet-x4" in r.stdout


@pytest.mark.slow
def test_adapt_and_report(tmp_path):
    out = tmp_path / "online.mp4"
    r = run([sys.executable, str(EXAMPLES / "adapt_and_report.py"), str(SAMPLE), str(out)])
    assert frames_and_size(out) == (5, (1280, 544))  # the first 0.2 s, x4
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["frames"] == 5 and report["adapt"]["method"] == "online"
    assert report["adapt"]["degradation"] == "bicubic"
    assert [f["index"] for f in report["adapt"]["frames"]] == [0, 1, 2, 3, 4]
    assert "adaptation online with A' = bicubic at x4" in r.stdout


def test_batch_folder(tmp_path):
    if not (BIN / "vsrpipe").exists():
        pytest.skip(f"no vsrpipe script beside {sys.executable}")
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "more").mkdir(parents=True)
    shutil.copy(SAMPLE, src / "a.mp4")
    shutil.copy(SAMPLE, src / "more" / "b.mp4")
    env = {**os.environ, "VSRPIPE": str(BIN / "vsrpipe")}
    r = run(["bash", str(EXAMPLES / "batch_folder.sh"), str(src), str(dst)], env=env)
    for name in ("a.mp4", "more/b.mp4"):
        assert frames_and_size(dst / name) == (10, (640, 272))  # bicubic x2, the first 0.4 s
    report = json.loads((dst / "batch.json").read_text())
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    assert "2 done, 0 skipped, 0 failed" in r.stdout + r.stderr


def test_enhance_vpy(tmp_path):
    vspipe = BIN / "vspipe"
    if not vspipe.exists():
        pytest.skip(f"no vspipe beside {sys.executable} (run `make setup`)")
    out = tmp_path / "out.y4m"
    # the script's own default input (the sample clip), as the docs run it from the repository root
    run([str(vspipe), "-c", "y4m", "-a", "model=bicubic", "-a", "scale=2", "examples/enhance.vpy", str(out)])
    assert frames_and_size(out) == (50, (640, 272))


def test_enhance_vpy_relative_input(tmp_path):
    vspipe = BIN / "vspipe"
    if not vspipe.exists():
        pytest.skip(f"no vspipe beside {sys.executable} (run `make setup`)")
    shutil.copy(SAMPLE, tmp_path / "clip.mp4")
    # vspipe runs the script from its own folder; a relative input is taken from where vspipe was started
    r = subprocess.run(
        [str(vspipe), "--info", "-a", "input=clip.mp4", "-a", "model=bicubic", "-a", "scale=2", str(EXAMPLES / "enhance.vpy")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PWD": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Width: 640" in r.stdout and "Height: 272" in r.stdout and "Frames: 50" in r.stdout
