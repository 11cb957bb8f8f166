from fractions import Fraction

import numpy as np
import pytest
import torch

from clips import make_clip, read_back
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io.encoding import parse_encoder_args
from vsr_pipeline.io.writer import VideoWriter

BACKENDS = ["pyav", "ffmpeg"]


def _copy(src, dst, backend, **opts):
    """Decode src and write it back unchanged through the writer."""
    info = probe(src)
    w = VideoWriter(dst, info, info.display_size, EncodeOptions(backend=backend, **opts))
    r = VideoReader(src, side_streams=w.plan.side_streams, info=info)
    w.open()
    try:
        for f in r:
            w.write(f.rgb, f.pts, f.time_base, f.side_packets)
        w.close(r.trailing_packets)
    except BaseException:
        w.abort()
        raise
    return info


def _times(pts, tb):
    return [float(p * tb) for p in pts]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov"])
def test_cfr_with_audio_and_subtitles(tmp_path, backend, ext):
    c = make_clip(tmp_path / f"in{ext}", n=12, audio=True, subtitles=True)
    out = tmp_path / f"out{ext}"
    _copy(c.path, out, backend)
    back = read_back(out)
    assert len(back["pts"]) == 12
    assert _times(back["pts"], back["time_base"]) == pytest.approx(_times(c.pts, c.time_base), abs=1e-4)
    assert back["audio_streams"] == 1 and back["subtitle_streams"] == 1
    assert back["audio_end"] == pytest.approx(c.audio_seconds, abs=1 / 25 + 0.03)  # ±1 frame (+AAC padding)
    assert back["subtitle_packets"] >= 2
    assert len(list(tmp_path.glob(".*partial*"))) == 0  # temporary file renamed away


@pytest.mark.parametrize("backend", BACKENDS)
def test_vfr_timestamps_kept(tmp_path, backend):
    pts = [0, 40, 80, 200, 210, 400, 433, 600]
    c = make_clip(tmp_path / "vfr.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000), audio=True)
    out = tmp_path / "out.mkv"
    _copy(c.path, out, backend)
    back = read_back(out)
    assert _times(back["pts"], back["time_base"]) == pytest.approx(_times(pts, Fraction(1, 1000)), abs=1e-6)
    assert back["audio_packets"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_bit_stays_ten_bit(tmp_path, backend):
    c = make_clip(tmp_path / "ten.mkv", codec="ffv1", pix_fmt="yuv444p10le", n=3)
    out = tmp_path / "out.mkv"
    _copy(c.path, out, backend, codec="ffv1", pix_fmt="yuv444p10le")
    a = [f.rgb for f in VideoReader(c.path)]
    b = [f.rgb for f in VideoReader(out)]
    assert probe(out).pix_fmt == "yuv444p10le"
    err = max((x - y).abs().max().item() for x, y in zip(a, b))
    assert err < 3 / 1023  # lossless codec: only 10-bit requantisation


@pytest.mark.parametrize("backend", BACKENDS)
def test_colour_tags_carried(tmp_path, backend):
    tags = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}
    c = make_clip(tmp_path / "tagged.mkv", color=tags, n=2)
    out = tmp_path / "out.mkv"
    _copy(c.path, out, backend)
    info = probe(out)
    assert info.color.matrix == "bt709" and not info.color.full_range
    assert info.color_primaries == 1 and info.color_trc == 1


def test_default_pix_fmt_follows_depth(tmp_path):
    c8 = make_clip(tmp_path / "a.mkv", n=2)
    assert VideoWriter(tmp_path / "o.mp4", probe(c8.path), (64, 48)).plan.pix_fmt == "yuv420p"
    c10 = make_clip(tmp_path / "b.mkv", n=2, pix_fmt="yuv420p10le")
    assert VideoWriter(tmp_path / "o.mp4", probe(c10.path), (64, 48)).plan.pix_fmt == "yuv420p10le"


def test_odd_size_is_padded_and_said(tmp_path, caplog):
    c = make_clip(tmp_path / "odd.mkv", codec="ffv1", size=(33, 21), n=2)
    info = probe(c.path)
    w = VideoWriter(tmp_path / "o.mp4", info, (33, 21))
    assert (w.plan.width, w.plan.height) == (34, 22)
    assert "padded to 34x22" in caplog.text
    w444 = VideoWriter(tmp_path / "o.mp4", info, (33, 21), EncodeOptions(pix_fmt="yuv444p"))
    assert (w444.plan.width, w444.plan.height) == (33, 21)


@pytest.mark.parametrize(
    "ext,opts,match",
    [
        (".webm", {"codec": "libx264"}, "cannot hold libx264"),
        (".mp4", {"pix_fmt": "rgb24"}, "cannot write pixel format 'rgb24'"),
        (".avi", {}, "unsupported extension"),
        (".mp4", {"codec": "no-such-encoder"}, "not available"),
    ],
)
def test_refused_formats(tmp_path, ext, opts, match):
    c = make_clip(tmp_path / "in.mp4", n=2)
    with pytest.raises(OutputError, match=match):
        VideoWriter(tmp_path / f"o{ext}", probe(c.path), (64, 48), EncodeOptions(**opts))


def test_side_stream_container_mismatch(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2, audio=True)
    with pytest.raises(OutputError, match=r"cannot hold the input's audio stream.*--no-audio"):
        VideoWriter(tmp_path / "o.webm", probe(c.path), (64, 48))
    w = VideoWriter(tmp_path / "o.webm", probe(c.path), (64, 48), EncodeOptions(copy_audio=False))
    assert w.plan.side_streams == ()


def test_abort_leaves_nothing(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    out = tmp_path / "o.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, probe(c.path), (64, 48)) as w:
            w.write(torch.rand(3, 48, 64), 0, Fraction(1, 2500))
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == [c.path]


def test_encoder_args():
    assert parse_encoder_args('-tune film -x264-params "aq-mode=3"') == {"tune": "film", "x264-params": "aq-mode=3"}
    with pytest.raises(ConfigError, match="pairs"):
        parse_encoder_args("-tune")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pixels_survive_lossless(tmp_path, backend):
    c = make_clip(tmp_path / "in.mkv", codec="ffv1", pix_fmt="yuv444p", n=2)
    out = tmp_path / "o.mkv"
    _copy(c.path, out, backend, codec="ffv1", pix_fmt="yuv444p")
    a = next(iter(VideoReader(c.path))).rgb
    b = next(iter(VideoReader(out))).rgb
    assert (a - b).abs().max().item() < 2.5 / 255
    assert np.allclose(a.numpy(), b.numpy(), atol=2.5 / 255)


def test_output_mode_follows_umask(tmp_path):
    import os

    c = make_clip(tmp_path / "in.mp4", n=2)
    old = os.umask(0o022)
    try:
        _copy(c.path, tmp_path / "o.mp4", "pyav")
    finally:
        os.umask(old)
    assert (tmp_path / "o.mp4").stat().st_mode & 0o777 == 0o644
