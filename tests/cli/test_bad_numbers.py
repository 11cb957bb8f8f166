"""Issue 14, items 5 and 6: every numeric option refuses NaN, infinity and out-of-range values with
a sentence and its exit code, and ``--model`` says what a path that is no weights file is.

Each case checks the message, the exit code and that no output (nor hidden temp file) is left.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.cli import main
from vsr_pipeline.config import RunnerConfig, min_tile
from vsr_pipeline.errors import ConfigError


def refused(tmp_path, command: str, args: list[str], code: int, match: str, out_name: str = "out.mp4"):
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    before = sorted(p.name for p in tmp_path.iterdir())
    extra = ["--model", "bicubic", "-s", "2"] if command == "enhance" else []
    r = CliRunner().invoke(main, [command, str(c.path), str(tmp_path / out_name), *extra, *args])
    assert r.exit_code == code, r.output
    assert match in r.output, r.output
    assert "Traceback" not in r.output and "Internal error" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no hidden temp file
    return r


@pytest.mark.parametrize(
    "args,match",
    [
        (["--scale", "nan"], "--scale must be a finite number, got nan."),
        (["--scale", "inf"], "--scale must be a finite number, got inf."),
        (["--scale", "-inf"], "--scale must be a finite number, got -inf."),
        (["--start", "nan"], "--start must be a finite number, got nan."),
        (["--duration", "inf"], "--duration must be a finite number, got inf."),
        (["--scene-threshold", "nan"], "--scene-threshold must be a finite number, got nan."),
        (["--adapt", "online", "--adapt-lr", "nan"], "--adapt-lr must be a finite number, got nan."),
        (["--adapt", "consistency", "--backtrack", "inf"], "--backtrack must be a finite number, got inf."),
        (["--adapt", "online", "--adapt-budget", "-0.5"], "--adapt-budget must be ≥ 0 (a fraction of the inference time; 0 = no cap), got -0.5."),
        (["--adapt", "online", "--adapt-budget", "nan"], "--adapt-budget must be a finite number, got nan."),
        (["--adapt", "consistency", "--adapt-budget", "1"], "--adapt-budget applies only with --adapt online"),
        (["--crf", "99"], "--crf 99 is out of range for libx264, which takes a CRF from 0 to 51."),
        (["--crf", "-1"], "--crf -1 is out of range for libx264"),
        (["--batch", "0"], "--batch must be at least 1, got 0."),
        (["--tile", "1"], f"--tile 1 is too small: with --tile-pad 16 a tile must be at least {min_tile(16)} px"),
        (["--tile", "12", "--tile-pad", "16"], "use --tile 16 or more, or 0 for whole frames"),
        (["--tile", "4", "--tile-pad", "2"], "with --tile-pad 2 a tile must be at least 8 px"),
        (["--tile-pad", "-1", "--tile", "16"], "--tile and --tile-pad must be ≥ 0."),
    ],
)
def test_enhance_numbers_refused(tmp_path, args, match):
    refused(tmp_path, "enhance", args, 7, match)


@pytest.mark.parametrize(
    "args,match",
    [
        (["--scale", "nan"], "--scale must be greater than 1 for degrade"),
        (["--scale", "inf"], "--scale must be greater than 1 for degrade"),
        (["--noise", "inf"], "--noise must be >= 0"),
        (["--start", "nan"], "--start must be a finite number, got nan."),
        (["--duration", "inf"], "--duration must be a finite number, got inf."),
    ],
)
def test_degrade_numbers_refused(tmp_path, args, match):
    refused(tmp_path, "degrade", args, 7, match, out_name="lr.mkv")


def test_evaluate_reference_start_nan(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    r = CliRunner().invoke(main, ["evaluate", str(c.path), "-r", str(c.path), "--reference-start", "nan", "--json", str(tmp_path / "s.json")])
    assert r.exit_code == 7 and "--reference-start must be a finite number >= 0, got nan." in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_tile_minimum_rule():
    assert min_tile(16) == 16 and min_tile(0) == 8 and min_tile(40) == 40
    RunnerConfig(tile=16)  # the smallest with the default pad
    RunnerConfig(tile=0)  # whole frames
    with pytest.raises(ConfigError, match="at least 40 px"):
        RunnerConfig(tile=39, tile_pad=40)


# 6. --model naming something that is not a weights file -------------------------------------

def test_model_folder(tmp_path):
    (tmp_path / "weights").mkdir()
    refused(tmp_path, "enhance", ["--model", str(tmp_path / "weights")], 5, "is a folder, not a weights file")


def test_model_folder_without_separator(tmp_path, monkeypatch):
    (tmp_path / "weights").mkdir()
    monkeypatch.chdir(tmp_path)
    refused(tmp_path, "enhance", ["--model", "weights"], 5, "--model 'weights' is a folder, not a weights file")


def test_model_fifo_is_not_opened(tmp_path):
    fifo = tmp_path / "model.pth"
    os.mkfifo(fifo)
    code = (
        "import sys; from click.testing import CliRunner; from vsr_pipeline.cli import main; "
        f"r = CliRunner().invoke(main, ['enhance', {str(tmp_path / 'in.mp4')!r}, {str(tmp_path / 'out.mp4')!r}, '--model', {str(fifo)!r}]); "
        "print(r.output); sys.exit(r.exit_code)"
    )
    make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)  # a read would hang
    assert p.returncode == 5, p.stdout + p.stderr
    assert "is a named pipe (fifo), not a weights file" in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.mp4", "model.pth"]


def test_model_device(tmp_path):
    refused(tmp_path, "enhance", ["--model", "/dev/zero"], 5, "--model '/dev/zero' is a device, not a weights file")


def test_model_dangling_link_and_missing(tmp_path):
    (tmp_path / "gone.pth").symlink_to(tmp_path / "nowhere.pth")
    refused(tmp_path, "enhance", ["--model", str(tmp_path / "gone.pth")], 5, "is a symbolic link to a missing file")
    (tmp_path / "gone.pth").unlink()
    refused(tmp_path, "enhance", ["--model", str(tmp_path / "none.pth")], 5, "does not exist")
