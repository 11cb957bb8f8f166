"""README / CLI-guide guarantees and exit codes that no other test checked (issue 18, item 3).

Already covered elsewhere (not repeated here): ``--encoder-args`` reaching x264
(tests/io/test_writer_options.py), output == input by the same path (tests/test_enhance.py),
``--start``/``--duration`` with the ffmpeg backend and copied audio and subtitles
(tests/io/test_section_and_tags.py).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from clips import make_clip, read_back
from vsr_pipeline.cli import main
from vsr_pipeline.io.reader import VideoReader


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


# -- exit 1: a bug, traceback only with -v --------------------------------------------------


def test_internal_error_exit_1_traceback_only_with_verbose(tmp_path, monkeypatch):
    c = make_clip(tmp_path / "in.mp4", n=2)

    def bug(*a, **k):
        raise ZeroDivisionError("planted bug for the test")

    monkeypatch.setattr("vsr_pipeline.pipeline.transcode", bug)
    quiet = cli("enhance", c.path, tmp_path / "o.mp4", "-m", "bicubic", "-s", "2")
    assert quiet.exit_code == 1, quiet.output
    assert "Traceback" not in quiet.output and "Run with -v" in quiet.output
    loud = cli("-v", "enhance", c.path, tmp_path / "o.mp4", "-m", "bicubic", "-s", "2")
    assert loud.exit_code == 1, loud.output
    assert "Traceback (most recent call last)" in loud.output
    assert "ZeroDivisionError: planted bug for the test" in loud.output
    assert not (tmp_path / "o.mp4").exists() and partials(tmp_path) == []


# -- side streams: dropped on request, otherwise copied byte for byte -----------------------


@pytest.mark.parametrize("flags,audio,subs", [
    (["--no-audio"], 0, 1), (["--no-subtitles"], 1, 0), (["--no-audio", "--no-subtitles"], 0, 0),
])
def test_no_audio_no_subtitles_drop_the_streams(tmp_path, flags, audio, subs):
    c = make_clip(tmp_path / "in.mkv", n=6, audio=True, subtitles=True)
    out = tmp_path / "out.mkv"
    r = cli("enhance", c.path, out, "-m", "bicubic", "-s", "2", *flags)
    assert r.exit_code == 0, r.output
    back = read_back(out)
    assert (back["audio_streams"], back["subtitle_streams"]) == (audio, subs)
    assert len(back["pts"]) == 6


def _packets(path: Path, kind: str) -> tuple[str, list[bytes]]:
    with av.open(str(path)) as cont:
        s = getattr(cont.streams, kind)[0]
        codec = s.codec_context.name
        data = [bytes(p) for p in cont.demux(s) if p.size]
    return codec, data


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_side_streams_copied_without_reencoding(tmp_path, backend):
    """Audio and subtitle packets come out with the same codec and the same bytes."""
    c = make_clip(tmp_path / "in.mkv", n=10, audio=True, subtitles=True)
    out = tmp_path / "out.mkv"
    r = cli("enhance", c.path, out, "-m", "bicubic", "-s", "2", "--backend", backend)
    assert r.exit_code == 0, r.output
    for kind in ("audio", "subtitles"):
        codec_in, data_in = _packets(c.path, kind)
        codec_out, data_out = _packets(out, kind)
        assert codec_out == codec_in
        assert data_in and data_out == data_in, kind


def test_container_mismatch_names_the_extensions_that_hold_the_stream(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2, audio=True)  # AAC: webm holds only opus/vorbis
    r = cli("enhance", c.path, tmp_path / "o.webm", "-m", "bicubic", "-s", "2")
    assert r.exit_code == 4, r.output
    m = re.search(r"use an output extension that holds it \(([^)]*)\)", r.output)
    assert m, r.output
    named = {e.strip() for e in m.group(1).split(",")}
    assert {".mp4", ".mkv", ".mov"} <= named and ".webm" not in named
    assert "--no-audio" in r.output
    assert not (tmp_path / "o.webm").exists() and partials(tmp_path) == []


# -- options that must reach the work -------------------------------------------------------


def test_tile_reaches_the_runner_and_leaves_no_seams(tmp_path, monkeypatch):
    """--tile cuts frames into tiles (the runner's tiled path runs) and the result equals the untiled one."""
    from vsr_pipeline.runner import Runner

    c = make_clip(tmp_path / "in.mkv", n=5, size=(48, 40), codec="ffv1", pix_fmt="yuv444p")
    seen: list[int] = []
    original = Runner._tiled

    def spy(self, net, x, tile, pad):
        seen.append(tile)
        return original(self, net, x, tile, pad)

    monkeypatch.setattr(Runner, "_tiled", spy)
    whole, tiled = tmp_path / "whole.mkv", tmp_path / "tiled.mkv"
    common = ["-m", "vsrnet-x4", "--codec", "ffv1", "--pix-fmt", "gbrp10le"]
    assert cli("enhance", c.path, whole, *common).exit_code == 0
    assert seen == []
    r = cli("enhance", c.path, tiled, *common, "--tile", "16")
    assert r.exit_code == 0, r.output
    assert seen and set(seen) == {16}
    a = [f.rgb for f in VideoReader(whole)]
    b = [f.rgb for f in VideoReader(tiled)]
    assert len(a) == len(b) == 5
    diff = max((x - y).abs().max().item() for x, y in zip(a, b))
    assert diff <= 1.01 / 1023  # exact up to float summation order and the 10-bit RGB rounding


def _x264_settings(path: Path) -> dict[str, str]:
    m = re.search(rb"x264 - core .*? options: ([^\x00]*)", path.read_bytes())
    assert m, "no x264 settings SEI in the output"
    return dict(item.partition("=")[::2] for item in m.group(1).decode().split())


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_crf_and_encoder_args_reach_the_encoder_through_the_cli(tmp_path, backend):
    c = make_clip(tmp_path / "in.mkv", n=4, codec="ffv1")
    out = tmp_path / "o.mp4"
    r = cli("enhance", c.path, out, "-m", "bicubic", "-s", "2", "--backend", backend, "--crf", "31",
            "--encoder-args", "-tune film -x264-params keyint=3")
    assert r.exit_code == 0, r.output
    s = _x264_settings(out)
    assert s["rc"] == "crf" and float(s["crf"]) == 31.0
    assert s["psy_rd"] == "1.00:0.15" and s["keyint"] == "3"  # -tune film; the private option


ENCODERS = [
    pytest.param(".webm", None, "vp9", id="webm-vp9"),
    pytest.param(".mkv", "libx265", "hevc", id="x265"),
    pytest.param(".mkv", "libsvtav1", "av1", id="av1-svt"),
    pytest.param(".mkv", "libaom-av1", "av1", id="av1-aom", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("ext,codec,decoded_as", ENCODERS)
def test_other_encoders_end_to_end(tmp_path, ext, codec, decoded_as):
    encoder = codec or "libvpx-vp9"
    if encoder not in av.codecs_available:
        pytest.skip(f"{encoder} is not in this FFmpeg build")
    c = make_clip(tmp_path / "in.mkv", n=6, codec="ffv1")
    out = tmp_path / f"o{ext}"
    args = ["enhance", c.path, out, "-m", "bicubic", "-s", "2"] + (["--codec", codec] if codec else [])
    r = cli(*args)
    assert r.exit_code == 0, r.output
    back = read_back(out)
    assert len(back["pts"]) == 6
    with av.open(str(out)) as cont:
        v = cont.streams.video[0]
        assert av.Codec(v.codec_context.name, "r").canonical_name == decoded_as and (v.width, v.height) == (128, 96)
    src = [f.rgb for f in VideoReader(c.path)]
    got = [f.rgb for f in VideoReader(out)]
    # the picture is the input, upscaled: downscaled back, it is close to the input
    import torch.nn.functional as F

    err = max((F.avg_pool2d(g[None], 2)[0] - s).abs().mean().item() for s, g in zip(src, got))
    assert err < 0.03


# -- output paths that are the input ---------------------------------------------------------


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_output_that_is_the_input_through_a_link(tmp_path, link):
    c = make_clip(tmp_path / "in.mp4", n=2)
    before = c.path.read_bytes()
    alias = tmp_path / "alias.mp4"
    if link == "symlink":
        alias.symlink_to(c.path)
    else:
        os.link(c.path, alias)
    r = cli("enhance", c.path, alias, "-m", "bicubic", "-s", "2", "--overwrite")
    assert r.exit_code == 4, r.output
    assert "is the input file" in r.output
    assert c.path.read_bytes() == before
    assert partials(tmp_path) == []


# -- encoder failures: exit 4, nothing at the output, --overwrite keeps the original --------


def _fake_ffmpeg(folder: Path, body: str) -> Path:
    folder.mkdir()
    exe = folder / "ffmpeg"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


@pytest.mark.parametrize("when,body", [
    # reads a little, then dies: the writer thread's next write hits a broken pipe
    ("during", "head -c 100 >/dev/null; echo 'simulated encoder crash' >&2; exit 1"),
    # reads everything, then fails: only close() can notice
    ("at-close", "cat >/dev/null; echo 'simulated failure at the end' >&2; exit 1"),
])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_encoder_failure_exit_4_and_nothing_replaced(tmp_path, monkeypatch, when, body, overwrite):
    c = make_clip(tmp_path / "in.mp4", n=30)
    fake = _fake_ffmpeg(tmp_path / "bin", body)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out.mp4"
    if overwrite:
        out.write_bytes(b"the original result")
    r = cli("enhance", c.path, out, "-m", "bicubic", "-s", "2", "--backend", "ffmpeg",
            *(["--overwrite"] if overwrite else []))
    assert r.exit_code == 4, r.output
    assert "simulated" in r.output  # ffmpeg's own last line is the reason given
    if overwrite:
        assert out.read_bytes() == b"the original result"
    else:
        assert not out.exists()
    assert partials(tmp_path) == []


def test_pyav_encoder_failure_in_writer_thread_exit_4(tmp_path, monkeypatch):
    """An encoder error raised in the encode thread (PyAV backend) stops the run: exit 4, no file."""
    import av.error

    from vsr_pipeline.io import writer

    calls = {"n": 0}
    original = writer._PyAVSink.write

    def failing(self, planes, pts, time_base, side_packets):
        calls["n"] += 1
        if calls["n"] == 3:
            raise writer.OutputError("Encoding failed (simulated).")
        return original(self, planes, pts, time_base, side_packets)

    monkeypatch.setattr(writer._PyAVSink, "write", failing)
    c = make_clip(tmp_path / "in.mp4", n=12)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the original result")
    r = cli("enhance", c.path, out, "-m", "bicubic", "-s", "2", "--overwrite")
    assert r.exit_code == 4, r.output
    assert "simulated" in r.output
    assert out.read_bytes() == b"the original result"
    assert partials(tmp_path) == []
