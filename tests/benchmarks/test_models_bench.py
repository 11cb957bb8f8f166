"""benchmarks/models.py on a tiny synthetic clip: one row per model, bicubic as the Δ reference, the JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from clips import make_clip

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "models.py"


@pytest.mark.slow  # several vsrpipe processes
def test_tiny_clip_rows_and_json(tmp_path: Path):
    clip = make_clip(tmp_path / "hr.mp4", n=5, size=(70, 52)).path
    out = tmp_path / "models.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--clip", str(clip), "--start", "0", "--frames", "2", "--every", "2",
         "--models", "bicubic,vsrnet-x4", "--sample-frames", "0", "--no-perceptual", "--json", str(out), "--markdown"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["frames"] == 2 and data["size"] == [64, 48]  # cropped to a multiple of 2 × the scale
    rows = {r["model"]: r for r in data["models"]}
    assert set(rows) == {"bicubic", "vsrnet-x4"}
    assert rows["bicubic"]["delta_bicubic"] == 0.0
    assert rows["vsrnet-x4"]["delta_bicubic"] == pytest.approx(rows["vsrnet-x4"]["psnr"] - rows["bicubic"]["psnr"])
    assert all(math.isfinite(r["psnr"]) and r["s_per_frame"] > 0 and r["error"] is None for r in rows.values())
    assert [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ") and "×4" in line] == ["bicubic", "vsrnet-x4"]
