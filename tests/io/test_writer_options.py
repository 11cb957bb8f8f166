"""--encoder-args names and --crf values are checked against the encoder before anything is written."""

import re
import subprocess

import av
import pytest

from clips import make_clip, read_back
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.io.encoding import (
    _GENERIC_FALLBACK,
    CRF_RANGE,
    MUXER_OPTIONS,
    _crf_range,
    encoder_options,
    find_ffmpeg,
)
from vsr_pipeline.io.writer import VideoWriter

BACKENDS = ["pyav", "ffmpeg"]


def _needs(codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")


@pytest.fixture
def clip(tmp_path):
    """A small lossless input clip; the only file in tmp_path."""
    return make_clip(tmp_path / "in.mkv", n=15, codec="ffv1")


def _refused(tmp_path, clip, ext, match, **opts):
    """VideoWriter refuses ``opts`` with a ConfigError matching ``match`` and writes nothing."""
    with pytest.raises(ConfigError, match=match) as err:
        VideoWriter(tmp_path / f"out{ext}", probe(clip.path), (64, 48), EncodeOptions(**opts))
    assert sorted(tmp_path.iterdir()) == [clip.path]  # no output, no hidden .partial file
    return str(err.value)


def _encode(clip, out, **opts):
    """Write ``clip`` to ``out`` through the writer; returns the bytes written."""
    info = probe(clip.path)
    with VideoWriter(out, info, info.display_size, EncodeOptions(**opts)) as w:
        for f in VideoReader(clip.path, info=info):
            w.write(f.rgb, f.pts, f.time_base)
    return out.read_bytes()


def _x264_settings(data: bytes) -> dict[str, str]:
    """The settings x264 records in its SEI ("options: ... deblock=1:-1:-1 ...")."""
    m = re.search(rb"x264 - core .*? options: ([^\x00]*)", data)
    assert m, "no x264 settings SEI in the output"
    return dict(item.partition("=")[::2] for item in m.group(1).decode().split())


def _keyframes(path) -> list[int]:
    """Indices (in presentation order) of the keyframes in the video stream of ``path``."""
    with av.open(str(path)) as c:
        packets = sorted((p.pts, p.is_keyframe) for p in c.demux(video=0) if p.size)
    return [i for i, (_, key) in enumerate(packets) if key]


# -- option names ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_option_refused(tmp_path, clip, backend):
    msg = _refused(tmp_path, clip, ".mp4", r"-bogus .*libx264", backend=backend, encoder_args="-bogus 1")
    assert "ffmpeg -h encoder=libx264" in msg


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_option_refused_among_known_ones(tmp_path, clip, backend):
    _refused(tmp_path, clip, ".mkv", r"-x246-params .*libx264", backend=backend, encoder_args="-tune film -x246-params keyint=7")


@pytest.mark.parametrize("backend", BACKENDS)
def test_private_option_of_another_encoder_refused(tmp_path, clip, backend):
    # -tune is libx264's, not ffv1's: PyAV would hand it to ffv1, which ignores it
    _refused(tmp_path, clip, ".mkv", r"-tune .*ffv1", backend=backend, codec="ffv1", encoder_args="-tune film")


@pytest.mark.parametrize("backend", BACKENDS)
def test_private_option_reaches_encoder(tmp_path, clip, backend):
    plain = _x264_settings(_encode(clip, tmp_path / "plain.mp4", backend=backend))
    film = _x264_settings(_encode(clip, tmp_path / "film.mp4", backend=backend, encoder_args="-tune film"))
    assert (plain["deblock"], plain["psy_rd"]) == ("1:0:0", "1.00:0.00")
    assert (film["deblock"], film["psy_rd"]) == ("1:-1:-1", "1.00:0.15")  # what x264's film tune sets


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("args", ["-x264-params keyint=7:scenecut=0", "-g 7 -x264-params scenecut=0"])
def test_private_and_generic_options_set_keyframe_spacing(tmp_path, clip, backend, args):
    out = tmp_path / "out.mkv"
    _encode(clip, out, backend=backend, encoder_args=args)
    assert _keyframes(out) == [0, 7, 14]
    assert _x264_settings(out.read_bytes())["keyint"] == "7"


def test_generic_option_names_come_from_ffmpeg():
    x264 = encoder_options("libx264")
    assert {"tune", "x264-params", "preset", "crf"} <= set(x264.private)
    assert {"g", "bf", "b", "maxrate", "bufsize", "threads", "flags", "qmin", "qmax", "keyint_min"} <= x264.generic
    assert "tune" not in encoder_options("ffv1").private
    assert "skip_frame" not in x264.generic  # a decoding-only AVCodecContext option
    if hasattr(av.CodecContext.create(av.Codec("libx264", "w")), "supported_options"):
        assert _GENERIC_FALLBACK <= x264.generic  # the old-PyAV fallback names are real


def test_stream_specifier(tmp_path, clip):
    w = VideoWriter(tmp_path / "o.mp4", probe(clip.path), (64, 48), EncodeOptions(encoder_args="-b:v 300k -crf:v 20"))
    assert w.plan.options["b"] == "300k" and w.plan.options["crf"] == "20"
    assert not any(":" in k for k in w.plan.options)  # PyAV would ignore "b:v"
    _refused(tmp_path, clip, ".mp4", r"-b:a .*only one encoded", encoder_args="-b:a 128k")


@pytest.mark.parametrize(
    "args,match",
    [
        ("-pix_fmt yuv444p", "--pix-fmt"),
        ("-c:v libx265", "--codec"),
        ("-colorspace bt2020nc", "follow the input"),
        ("-aspect 16:9", "-sar"),
        ("-metadata title=x", r"-metadata .*libx264 encoder or of the mp4 muxer"),
    ],
)
def test_options_the_writer_owns_refused(tmp_path, clip, args, match):
    _refused(tmp_path, clip, ".mp4", match, encoder_args=args)


# -- muxer options ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_muxer_option_applied_by_both_backends(tmp_path, clip, backend):
    plain = _encode(clip, tmp_path / "plain.mp4", backend=backend)
    fast = _encode(clip, tmp_path / "fast.mp4", backend=backend, encoder_args="-movflags +faststart")
    assert plain.find(b"moov") > plain.find(b"mdat")
    assert fast.find(b"moov") < fast.find(b"mdat")  # faststart moved the index to the front


def test_muxer_option_of_another_muxer_refused(tmp_path, clip):
    _refused(tmp_path, clip, ".mkv", r"-movflags .*matroska muxer", encoder_args="-movflags +faststart")


@pytest.mark.parametrize("muxer", sorted(MUXER_OPTIONS))
def test_muxer_option_list_matches_ffmpeg(muxer):
    text = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-h", f"muxer={muxer}"], capture_output=True, text=True, timeout=60
    ).stdout
    listed = set(re.findall(r"^  -(\S+)", text, re.M))
    assert MUXER_OPTIONS[muxer] <= listed


# -- CRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "codec,ext,crf,span",
    [
        ("libx264", ".mp4", 99, "0 to 51"),
        ("libx264", ".mp4", 52, "0 to 51"),
        ("libx264", ".mp4", -1, "0 to 51"),
        ("libx265", ".mkv", 52, "0 to 51"),
        ("libvpx-vp9", ".webm", 64, "0 to 63"),
        ("libsvtav1", ".mkv", 64, "0 to 63"),
        ("libaom-av1", ".mkv", 64, "0 to 63"),
    ],
)
def test_crf_out_of_range_refused(tmp_path, clip, backend, codec, ext, crf, span):
    _needs(codec)
    msg = _refused(tmp_path, clip, ext, f"--crf {crf} is out of range for {codec}", backend=backend, codec=codec, crf=crf)
    assert span in msg


def test_crf_in_encoder_args_checked(tmp_path, clip):
    _refused(tmp_path, clip, ".mp4", r"-crf 60 in --encoder-args is out of range for libx264.*0 to 51", encoder_args="-crf 60")
    _refused(tmp_path, clip, ".mp4", r"-crf 'high' .*not a number", encoder_args="-crf high")
    w = VideoWriter(tmp_path / "o.mp4", probe(clip.path), (64, 48), EncodeOptions(encoder_args="-crf 18.5"))
    assert w.plan.options["crf"] == "18.5"  # x264 takes a fractional CRF


def test_vp9_crf_is_whole(tmp_path, clip):
    _needs("libvpx-vp9")
    _refused(tmp_path, clip, ".webm", r"30.5 .*whole number.*0 to 63", codec="libvpx-vp9", encoder_args="-crf 30.5")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("codec,ext,crf", [("libx264", ".mp4", 51), ("libx264", ".mp4", 0), ("libvpx-vp9", ".webm", 63)])
def test_crf_at_the_ends_accepted(tmp_path, clip, backend, codec, ext, crf):
    _needs(codec)
    out = tmp_path / f"out{ext}"
    data = _encode(clip, out, backend=backend, codec=codec, crf=crf)
    assert len(read_back(out)["pts"]) == 15
    if codec == "libx264":
        settings = _x264_settings(data)
        assert float(settings.get("crf", settings.get("qp"))) == crf  # x264 writes crf 0 as lossless qp 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("codec,ext", [("ffv1", ".mkv"), ("prores_ks", ".mov"), ("mpeg4", ".mp4")])
def test_crf_without_crf_option_refused(tmp_path, clip, backend, codec, ext):
    _needs(codec)
    msg = _refused(tmp_path, clip, ext, f"{codec} has no CRF setting", backend=backend, codec=codec, crf=10)
    assert "leave out --crf" in msg and f"ffmpeg -h encoder={codec}" in msg
    _refused(tmp_path, clip, ext, f"{codec} has no CRF.*leave out -crf in --encoder-args", codec=codec, encoder_args="-crf 10")


def test_preset_without_preset_option_refused(tmp_path, clip):
    _refused(tmp_path, clip, ".mkv", "ffv1 has no preset", codec="ffv1", preset="slow")


def test_crf_range_read_from_the_encoder():
    for codec in ("libvpx-vp9", "libsvtav1", "libaom-av1"):
        if codec in av.codecs_available:
            option = encoder_options(codec).private["crf"]
            assert option.max == CRF_RANGE[codec][1]  # the AVOption states the range the table keeps
            assert _crf_range(codec, option) == CRF_RANGE[codec]
    # x264 declares -1..FLT_MAX and leaves the range to the library: the table gives it
    option = encoder_options("libx264").private["crf"]
    assert option.max > 1e9 and _crf_range("libx264", option) == (0, 51)
