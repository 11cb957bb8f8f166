"""HDR10 static metadata (mastering display, content light level) is carried from input to output.

A tiny 10-bit HEVC PQ clip whose bitstream holds mastering-display and max-cll SEI goes
through ``vsrpipe enhance`` with both writer backends, whole and as a resumable run joined
from several segments; the output is decoded with PyAV and its frames must carry exactly
the input's values. An SDR input must come out without such side data.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import struct
from fractions import Fraction as F

import av
import pytest
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.cli import main
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io import hdr
from vsr_pipeline.io.encoding import plan_output
from vsr_pipeline.io.hdr import ContentLight, MasteringDisplay, parse_content_light, parse_mastering_display, read_hdr
from vsr_pipeline.io.probe import probe

pytestmark = pytest.mark.skipif("libx265" not in av.codecs_available, reason="this FFmpeg build has no libx265")

N = 10  # frames of the test clips
# A P3-D65 mastering display of 4000 cd/m² peak and 0.005 cd/m² black, MaxCLL 1234, MaxFALL 567 —
# deliberately not BT.2020 or round numbers, so that nothing could come out right by default.
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(40000000,50)"
EXPECTED_MD = MasteringDisplay(
    red=(F(34000, 50000), F(16000, 50000)),
    green=(F(13250, 50000), F(34500, 50000)),
    blue=(F(7500, 50000), F(3000, 50000)),
    white_point=(F(15635, 50000), F(16450, 50000)),
    min_luminance=F(50, 10000),
    max_luminance=F(4000),
)
EXPECTED_CLL = ContentLight(max_cll=1234, max_fall=567)
PQ = {"color_trc": 16, "color_primaries": 9, "colorspace": 9}  # SMPTE ST 2084, BT.2020


@pytest.fixture
def hdr_clip(tmp_path):
    src = tmp_path / "hdr10 in.mkv"
    make_clip(src, n=N, size=(64, 48), codec="libx265", pix_fmt="yuv420p10le", color=PQ,
              options={"x265-params": f"log-level=error:master-display={MASTER}:max-cll=1234,567"})
    return src


def hdr_of_frames(path):
    """(frames, [(mastering display, content light) of every decoded frame], keyframe packets, first frame)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    with av.open(str(path)) as c:
        keyframes = sum(1 for p in c.demux(video=0) if p.size and p.is_keyframe)
    return len(frames), [read_hdr(f) for f in frames], keyframes, frames[0]


def vsrpipe(*args):
    env = {k: v for k, v in os.environ.items() if k != "VSRPIPE_BATCH_FAULT"}
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


CLI = "import sys; from vsr_pipeline.cli import main; main(sys.argv[1:], prog_name='vsrpipe')"


def enhance(src, out, *args):
    """``vsrpipe enhance`` in a fresh process, as a user runs it (no encoder or stage state from other tests)."""
    r = vsrpipe("enhance", src, out, "--model", "bicubic", "--scale", "2", "--codec", "libx265", "-q", *args)
    assert r.returncode == 0, r.stderr
    return r


def test_probe_reads_the_inputs_hdr10_metadata(hdr_clip, tmp_path):
    info = probe(hdr_clip)
    assert info.mastering_display == EXPECTED_MD and info.mastering_display.complete
    assert info.content_light == EXPECTED_CLL
    sdr = probe(make_clip(tmp_path / "sdr.mkv", n=2).path)
    assert sdr.mastering_display is None and sdr.content_light is None


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_hdr10_metadata_survives_enhance(hdr_clip, tmp_path, backend):
    out = tmp_path / f"up {backend}.mkv"
    enhance(hdr_clip, out, "--backend", backend)
    count, meta, _, first = hdr_of_frames(out)
    assert count == N
    assert meta == [(EXPECTED_MD, EXPECTED_CLL)] * N
    assert (first.width, first.height, first.format.name) == (128, 96, "yuv420p10le")
    assert (first.color_trc, first.color_primaries) == (16, 9)


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_hdr10_metadata_survives_a_resumable_join_of_segments(hdr_clip, tmp_path, backend):
    out = tmp_path / f"joined {backend}.mkv"
    enhance(hdr_clip, out, "--backend", backend, "--resume", "--segment-frames", "4")
    count, meta, keyframes, _ = hdr_of_frames(out)
    assert keyframes >= 2  # one per segment: the file was joined from several segments
    assert count == N
    assert meta == [(EXPECTED_MD, EXPECTED_CLL)] * N


def test_hdr10_input_without_codec_is_encoded_with_x265_and_keeps_it(hdr_clip, tmp_path):
    out = tmp_path / "default codec.mkv"
    r = CliRunner().invoke(main, ["enhance", str(hdr_clip), str(out), "--model", "bicubic", "--scale", "2", "-q"])
    assert r.exit_code == 0, r.output
    count, meta, _, first = hdr_of_frames(out)
    assert count == N and meta == [(EXPECTED_MD, EXPECTED_CLL)] * N
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
    sdr = probe(make_clip(tmp_path / "sdr.mkv", n=2).path)  # SDR input keeps the usual default
    assert plan_output(tmp_path / "o.mkv", sdr, (64, 48), EncodeOptions()).codec == "libx264"


def test_sdr_input_gets_no_hdr10_side_data(tmp_path, caplog):
    src = make_clip(tmp_path / "sdr.mkv", n=4).path
    out = tmp_path / "up.mkv"
    with caplog.at_level(logging.WARNING):
        enhance(src, out)
    count, meta, _, _ = hdr_of_frames(out)
    assert count == 4
    assert meta == [(None, None)] * 4
    assert "HDR10" not in caplog.text


def test_encoders_that_cannot_carry_it_warn_once_per_input(hdr_clip, tmp_path, caplog):
    info = probe(hdr_clip)
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.io.hdr"):
        plan = plan_output(tmp_path / "o.mkv", info, (128, 96), EncodeOptions(codec="libx264"))
        plan_output(tmp_path / "o.mkv", info, (128, 96), EncodeOptions(codec="libx264"))  # a second segment
    assert not any("master-display" in v or "max-cll" in v for v in plan.options.values())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "libx264 cannot carry the input's HDR10" in warnings[0].getMessage()
    assert str(hdr_clip) in warnings[0].getMessage()


def test_x265_params_get_the_inputs_values_and_keep_the_users(hdr_clip, tmp_path):
    info = probe(hdr_clip)
    plan = plan_output(tmp_path / "o.mkv", info, (128, 96), EncodeOptions(codec="hevc"))
    assert plan.options["x265-params"] == f"log-level=error:master-display={MASTER}:max-cll=1234,567"
    mine = "G(1,2)B(3,4)R(5,6)WP(7,8)L(9,1)"
    given = EncodeOptions(codec="libx265", encoder_args=f"-x265-params aq-mode=3:master-display={mine}")
    plan = plan_output(tmp_path / "o.mkv", info, (128, 96), given)
    assert plan.options["x265-params"] == f"aq-mode=3:master-display={mine}:max-cll=1234,567"


def test_svtav1_params_use_its_decimal_syntax(hdr_clip, tmp_path):
    info = probe(hdr_clip)
    plan = plan_output(tmp_path / "o.mkv", info, (128, 96), EncodeOptions(codec="libsvtav1"))
    assert plan.options["svtav1-params"] == (
        "mastering-display=G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)L(4000,0.005)"
        ":content-light=1234,567"
    )


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this FFmpeg build has no libsvtav1")
def test_svtav1_output_carries_it_within_av1_precision(hdr_clip, tmp_path):
    out = tmp_path / "up.mkv"
    enhance(hdr_clip, out, "--codec", "libsvtav1")  # the later --codec wins
    count, meta, _, _ = hdr_of_frames(out)
    assert count == N
    md, cll = meta[0]
    assert cll == EXPECTED_CLL
    # AV1 stores chromaticities as 0.16 and luminance as 24.8 (max) / 18.14 (min) fixed point
    for got, want in zip((md.red, md.green, md.blue, md.white_point), (EXPECTED_MD.red, EXPECTED_MD.green,
                                                                       EXPECTED_MD.blue, EXPECTED_MD.white_point)):
        assert abs(got[0] - want[0]) <= F(1, 1 << 17) and abs(got[1] - want[1]) <= F(1, 1 << 17)
    assert abs(md.max_luminance - EXPECTED_MD.max_luminance) <= F(1, 1 << 9)
    assert abs(md.min_luminance - EXPECTED_MD.min_luminance) <= F(1, 1 << 15)


def _mdcv(points, lum, has_primaries=1, has_luminance=1) -> bytes:
    return struct.pack("=22i", *[v for p in points for xy in p for v in xy], *[v for r in lum for v in r],
                       has_primaries, has_luminance)


def test_parsing_keeps_only_what_the_payload_flags():
    points = [((34000, 50000), (16000, 50000)), ((13250, 50000), (34500, 50000)),
              ((7500, 50000), (3000, 50000)), ((15635, 50000), (16450, 50000))]
    lum = [(50, 10000), (40000000, 10000)]
    assert parse_mastering_display(_mdcv(points, lum)) == EXPECTED_MD
    no_lum = parse_mastering_display(_mdcv(points, lum, has_luminance=0))
    assert no_lum.red == EXPECTED_MD.red and no_lum.min_luminance is None and no_lum.max_luminance is None
    assert not no_lum.complete
    no_primaries = parse_mastering_display(_mdcv(points, lum, has_primaries=0))
    assert no_primaries.white_point is None and no_primaries.max_luminance == F(4000)
    assert parse_mastering_display(_mdcv(points, lum, 0, 0)) is None
    zero_den = parse_mastering_display(_mdcv([points[0], ((1, 0), (2, 3)), *points[2:]], [(50, 0), (1, 1)]))
    assert zero_den.green is None and zero_den.blue == EXPECTED_MD.blue and zero_den.min_luminance is None
    assert zero_den.max_luminance == 1 and not zero_den.complete
    assert parse_mastering_display(_mdcv(points, lum)[:87]) is None
    assert parse_content_light(struct.pack("=2I", 1234, 567)) == EXPECTED_CLL
    assert parse_content_light(b"\x01" * 7) is None


def test_incomplete_mastering_display_is_not_invented(tmp_path, caplog):
    md = MasteringDisplay(EXPECTED_MD.red, EXPECTED_MD.green, EXPECTED_MD.blue, EXPECTED_MD.white_point, None, None)
    options = {"x265-params": "log-level=error"}
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.io.hdr"):
        hdr.add_hdr_options("libx265", tmp_path / "incomplete.mkv", md, EXPECTED_CLL, options)
    assert options == {"x265-params": "log-level=error:max-cll=1234,567"}
    assert "lacks its primaries or luminance" in caplog.text
    options = {}
    hdr.add_hdr_options("libx265", tmp_path / "incomplete.mkv", md, None, options)
    assert options == {}  # nothing to carry: no empty x265-params either


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_timestamps_that_do_not_start_at_zero_are_kept(tmp_path, backend):
    """A resumable run's later segment starts where it lies in the file; the join needs those times."""
    import torch

    from vsr_pipeline.io.writer import VideoWriter

    info = probe(make_clip(tmp_path / "in.mkv", n=2).path)
    out = tmp_path / "seg.mkv"
    with VideoWriter(out, info, (64, 48), EncodeOptions(backend=backend)) as w:
        for pts in (400, 440, 480):
            w.write(torch.full((3, 48, 64), 0.5), pts, info.time_base)
    with av.open(str(out)) as c:
        assert [f.pts for f in c.decode(video=0)] == [400, 440, 480]


def test_side_data_as_older_pyav_lists_it():
    """PyAV before 14 iterates over the entries themselves, each with a ``type``."""
    from types import SimpleNamespace

    class Entry(bytes):
        type = SimpleNamespace(name="CONTENT_LIGHT_LEVEL")

    assert read_hdr(SimpleNamespace(side_data=[Entry(struct.pack("=2I", 1234, 567))])) == (None, EXPECTED_CLL)
    assert read_hdr(SimpleNamespace()) == (None, None)
