"""Output sizes beyond what the encoder takes, or beyond the memory a frame may use, are refused before
anything is decoded: the exact sentence, the exit code, and nothing left at the output path.

The sizes are refused in milliseconds; without the checks each of these runs would try to allocate
gigabytes (``--scale 1000`` used to end in "Internal error" after asking for 36.8 GB).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from clips import make_clip

from vsr_pipeline import limits
from vsr_pipeline.cli import main
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.limits import check_encoder_size, check_frame_memory, ffmpeg_accepts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "batch"))
from batch_helpers import leftovers, vsrpipe


def refused(tmp_path, size: tuple[int, int], args: list[str], code: int, out: str = "out.mp4") -> str:
    """Run ``enhance`` on a 3-frame clip of ``size``; check the exit code and that nothing was written."""
    c = make_clip(tmp_path / "in.mp4", n=3, size=size)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / out), "--model", "bicubic", "-q", *args])
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and "Internal error" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before and leftovers(tmp_path) == []
    return r.output


def test_scale_1000_is_refused_by_the_encoder_limit(tmp_path):
    out = refused(tmp_path, (32, 24), ["--scale", "1000"], OutputError.exit_code)
    assert "The output frames would be 32000x24000, larger than libx264 encodes (at most 16384x16384); choose a smaller --scale." in out


def test_scale_1000_in_a_real_process(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    p = vsrpipe("enhance", c.path, tmp_path / "out.mp4", "--model", "bicubic", "--scale", "1000", timeout=120)
    assert p.returncode == 4, p.stderr
    assert "Error: The output frames would be 32000x24000, larger than libx264 encodes" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.mp4"]


def test_tiles_do_not_lift_the_encoder_limit(tmp_path):
    out = refused(tmp_path, (32, 24), ["--scale", "1000", "--tile", "64"], OutputError.exit_code)
    assert "larger than libx264 encodes (at most 16384x16384)" in out


def test_x264_limit_names_an_encoder_that_takes_the_size(tmp_path):
    # 16640x12480: too wide for x264, within FFmpeg's area limit, 2.3 GiB as float32 RGB
    out = refused(tmp_path, (32, 24), ["--scale", "520", "--tile", "64"], OutputError.exit_code)
    assert "larger than libx264 encodes (at most 16384x16384); choose a smaller --scale, or --codec libvpx-vp9 (up to 65536x65536)." in out


def test_svtav1_height_limit(tmp_path):
    out = refused(tmp_path, (32, 24), ["--scale", "400", "--codec", "libsvtav1", "--tile", "64"], OutputError.exit_code, "out.mkv")
    assert "The output frames would be 12800x9600, larger than libsvtav1 encodes (at most 16384x8704)" in out


def test_ffmpeg_area_limit_for_every_encoder(tmp_path):
    out = refused(tmp_path, (32, 24), ["--scale", "600", "--codec", "libvpx-vp9", "--tile", "64"], OutputError.exit_code, "out.webm")
    assert ("The output frames would be 19200x14400 (276 megapixels), larger than any FFmpeg encoder accepts "
            "(about 268 megapixels: (8·width + 1024)·(height + 128) must stay below 2³¹); choose a smaller --scale.") in out


def test_whole_frames_beyond_the_memory_limit_need_tiles(tmp_path):
    # 57600x4320: VP9 and FFmpeg take it, but it is 2.8 GiB as float32 RGB (the limit untiled is 2 GiB)
    out = refused(tmp_path, (640, 48), ["--scale", "90", "--codec", "libvpx-vp9"], ConfigError.exit_code, "out.webm")
    assert ("--scale 90 makes 57600x4320 output frames, 2.8 GiB each as float32 RGB, more than the 2.0 GiB a frame may "
            "take when the network runs on whole frames; give --tile 512 (or another tile size) or a smaller --scale.") in out


def test_tiled_frames_beyond_a_share_of_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 8 * 1024**3)  # a machine with 8 GiB
    out = refused(tmp_path, (640, 48), ["--scale", "90", "--codec", "libvpx-vp9", "--tile", "64"], ConfigError.exit_code, "out.webm")
    assert ("--scale 90 makes 57600x4320 output frames, 2.8 GiB each as float32 RGB, more than 25% of this machine's "
            "8.0 GiB of memory (whole frames are held even with --tile); choose a smaller --scale.") in out


def test_limits_at_their_edges(monkeypatch):
    monkeypatch.setattr(limits, "physical_memory", lambda: 64 * 1024**3)
    assert ffmpeg_accepts(16384, 16000) and not ffmpeg_accepts(16384, 16384)  # as avcodec_open2 decides (measured)
    assert not ffmpeg_accepts(0, 10)
    check_encoder_size("libx264", 16384, 16000)
    check_encoder_size("libx265", 60000, 4000)  # x265 has no limit of its own
    check_encoder_size("libsvtav1", 16384, 8704)
    for codec, (w, h) in [("libx264", (16386, 64)), ("libx264", (64, 16386)), ("libsvtav1", (64, 8706)), ("libvpx-vp9", (65538, 16))]:
        with pytest.raises(OutputError, match=f"larger than {codec} encodes"):
            check_encoder_size(codec, w, h)
    check_frame_memory(15360, 8640, scale=4, tile=0)  # 4K ×4 runs whole (1.5 GiB)
    with pytest.raises(ConfigError, match="give --tile 512"):
        check_frame_memory(16384, 16000, scale=4, tile=0)
    check_frame_memory(16384, 16000, scale=4, tile=256)  # tiles lift the whole-frame limit
