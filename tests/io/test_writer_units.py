"""vsr_pipeline.io.writer piece by piece: messages, planes, tags, failures, the side-stream cut.

Short clips (2-12 frames) and exact checks; the end-to-end copies through both backends
are in test_writer.py and test_section_and_tags.py.
"""

import logging
import shlex
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from clips import make_clip, read_back
from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io import writer as wr
from vsr_pipeline.io.color import rgb_to_yuv
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.writer import VideoWriter, cut_side_streams, stream_metadata

TB = Fraction(1, 2500)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def info(tmp_path):
    return probe(make_clip(tmp_path / "in.mp4", n=2).path)


def test_unknown_backend(tmp_path, info):
    with pytest.raises(ConfigError) as err:
        VideoWriter(tmp_path / "o.mp4", info, (64, 48), EncodeOptions(backend="gstreamer"))
    assert str(err.value) == "Unknown writer backend 'gstreamer'; use 'pyav' or 'ffmpeg'."


def test_missing_output_folder(tmp_path, info):
    w = VideoWriter(tmp_path / "no" / "o.mp4", info, (64, 48))
    with pytest.raises(OutputError) as err:
        w.open()
    assert str(err.value) == f"Output folder {str(tmp_path / 'no')!r} does not exist."
    assert w.tmp is None


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_write_close_counts_frames_and_publishes(tmp_path, info, backend):
    out = tmp_path / "o.mkv"
    w = VideoWriter(str(out), info, (64, 48), EncodeOptions(backend=backend, codec="ffv1", pix_fmt="yuv444p"))
    assert w.path == out and w.frames_written == 0
    with w:
        assert w.tmp.parent == tmp_path and w.tmp.exists() and not out.exists()
        for i in range(3):
            w.write(torch.full((3, 48, 64), i / 4), i * 100, TB)
        assert w.frames_written == 3
    assert names(tmp_path) == ["in.mp4", "o.mkv"]
    back = read_back(out)
    assert [float(p * back["time_base"]) for p in back["pts"]] == pytest.approx([0, 0.04, 0.08])
    grey = np.array([f.to_ndarray(format="rgb24")[10, 10] for f in back["frames"]], dtype=int)
    assert np.abs(grey - np.array([[0] * 3, [64] * 3, [128] * 3])).max() <= 1


def test_write_before_open(tmp_path, info):
    w = VideoWriter(tmp_path / "o.mp4", info, (64, 48))
    with pytest.raises(AssertionError) as err:
        w.write(torch.zeros(3, 48, 64), 0, TB)
    assert str(err.value) == "VideoWriter.open() first"


def test_exception_inside_with_removes_everything(tmp_path, info):
    with pytest.raises(KeyError):
        with VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(backend="ffmpeg")) as w:
            w.write(torch.rand(3, 48, 64), 0, TB)
            raise KeyError("boom")
    assert names(tmp_path) == ["in.mp4"]
    w.abort()  # a second abort is harmless
    assert names(tmp_path) == ["in.mp4"]


def test_wrong_frame_size(tmp_path, info):
    w = VideoWriter(tmp_path / "o.mp4", info, (64, 48))
    with pytest.raises(ValueError) as err:
        w._to_planes(torch.zeros(3, 40, 64))
    assert str(err.value) == "frame is (3, 40, 64), writer expects 3x48x64"


def test_planes_yuv_8_and_10_bit(tmp_path, info):
    rgb = torch.rand(3, 48, 64)
    w = VideoWriter(tmp_path / "o.mp4", info, (64, 48))
    planes = w._to_planes(rgb)
    want = rgb_to_yuv(rgb, w.plan.color, (1, 1))
    assert [p.dtype for p in planes] == [np.uint8] * 3 and [p.shape for p in planes] == [(48, 64), (24, 32), (24, 32)]
    assert all(np.array_equal(p, q.numpy()) for p, q in zip(planes, want))
    w10 = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1", pix_fmt="yuv444p10le"))
    planes = w10._to_planes(torch.ones(3, 48, 64))
    assert [p.dtype for p in planes] == [np.uint16] * 3 and planes[0].max() == 940


def test_odd_size_is_padded_by_replication(tmp_path):
    info = probe(make_clip(tmp_path / "odd.mkv", codec="ffv1", size=(33, 21), n=2).path)
    w = VideoWriter(tmp_path / "o.mp4", info, (33, 21), EncodeOptions(pix_fmt="yuv420p"))
    assert w.plan.pad == (1, 1)
    rgb = torch.zeros(3, 21, 33)
    rgb[:, :, -1] = 1.0  # a white last column and a grey last row
    rgb[:, -1, :-1] = 0.5
    y = w._to_planes(rgb)[0]
    assert y.shape == (22, 34)
    assert (y[:21, 33] == y[:21, 32]).all() and (y[21, :] == y[20, :]).all()
    assert y[0, 33] == 235 and y[21, 0] == y[20, 0] == 126


def test_planes_rgb_are_packed(tmp_path):
    info = probe(make_clip(tmp_path / "in.mkv", codec="ffv1", n=2).path)
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1", pix_fmt="bgr0"))
    assert w.plan.rgb
    rgb = torch.zeros(3, 48, 64)
    rgb[0] = 1.0
    (packed,) = w._to_planes(rgb)
    assert packed.reshape(48, 64, 4)[0, 0, :3].tolist() == [0, 0, 255]  # B, G, R


def test_stream_metadata_drops_generated_tags():
    class S:
        metadata = {"language": "fra", "title": "commentary", "DURATION": "00:01", "NUMBER_OF_FRAMES": "3",
                    "BPS-eng": "1", "_STATISTICS_TAGS": "x", "vendor_id": "[0]", "encoder": "Lavf", "handler_name": "Sound"}

    assert stream_metadata(S()) == {"language": "fra", "title": "commentary", "handler_name": "Sound"}


def test_fill_frame_pads_lines_and_tags(tmp_path):
    info = probe(make_clip(tmp_path / "t.mkv", n=2, size=(18, 10), codec="ffv1",
                           color={"colorspace": 1, "color_range": 2, "color_primaries": 1, "color_trc": 1}).path)
    w = VideoWriter(tmp_path / "o.mkv", info, (18, 10), EncodeOptions(codec="ffv1", pix_fmt="yuv420p"))
    planes = w._to_planes(torch.rand(3, 10, 18))
    frame = wr._fill_frame(planes, w.plan, info)
    assert (frame.width, frame.height, frame.format.name) == (18, 10, "yuv420p")
    assert frame.planes[0].line_size > 18  # padded lines
    for plane, want in zip(frame.planes, planes):
        got = np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, : plane.width]
        assert np.array_equal(got, want)
    assert (frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc) == (1, 2, 1, 1)


def test_pyav_cannot_create_the_container(tmp_path, info, monkeypatch):
    def refuse(*a, **k):
        raise av.error.PermissionError(13, "Permission denied")

    monkeypatch.setattr(wr.av, "open", refuse)
    w = VideoWriter(tmp_path / "o.mp4", info, (64, 48))
    with pytest.raises(OutputError) as err:
        w.open()
    assert str(err.value).startswith(f"Cannot create output file next to {str(tmp_path)!r} (")
    assert "Permission denied" in str(err.value)
    assert names(tmp_path) == ["in.mp4"]


def test_ffmpeg_binary_that_cannot_run(tmp_path, info):
    fake = tmp_path / "ffmpeg"
    fake.write_text("not a program")  # exists, not executable
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(backend="ffmpeg", ffmpeg_path=str(fake)))
    with pytest.raises(OutputError) as err:
        w.open()
    assert str(err.value) == f"Cannot run ffmpeg at {str(fake)!r} (Permission denied)."
    assert names(tmp_path) == ["ffmpeg", "in.mp4"]


def _fake_ffmpeg(tmp_path, body: str) -> Path:
    script = tmp_path / "ffmpeg"
    script.write_text("#!/bin/sh\n" + body + "cat > /dev/null\n")
    script.chmod(0o755)
    return script


def _write_with(tmp_path, info, script):
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(backend="ffmpeg", ffmpeg_path=str(script)))
    w.open()
    w.write(torch.rand(3, 48, 64), 0, TB)
    return w


def test_ffmpeg_failure_names_its_last_error_line(tmp_path, info, caplog):
    script = _fake_ffmpeg(tmp_path, "echo 'first line' >&2\necho '' >&2\necho 'the real reason' >&2\ncat > /dev/null\nexit 3\n")
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.io.writer"):
        w = _write_with(tmp_path, info, script)
    args = w._impl.args
    assert args[0] == str(script) and args[1:5] == ["-hide_banner", "-nostdin", "-loglevel", "error"]
    assert f"ffmpeg command: {shlex.join(args)}" in [r.getMessage() for r in caplog.records]
    with pytest.raises(OutputError) as err:
        w.close()
    assert str(err.value) == "ffmpeg failed to write the output: the real reason"
    assert names(tmp_path) == ["ffmpeg", "in.mp4"]


def test_ffmpeg_failure_message_that_is_not_utf8(tmp_path, info):
    script = _fake_ffmpeg(tmp_path, "printf 'bad byte \\377 here\\n' >&2\ncat > /dev/null\nexit 1\n")
    w = _write_with(tmp_path, info, script)
    with pytest.raises(OutputError) as err:
        w.close()
    assert str(err.value) == "ffmpeg failed to write the output: bad byte \ufffd here"


def test_ffmpeg_failure_without_message_gives_the_exit_code(tmp_path, info):
    w = _write_with(tmp_path, info, _fake_ffmpeg(tmp_path, "cat > /dev/null\nexit 7\n"))
    with pytest.raises(OutputError) as err:
        w.close()
    assert str(err.value) == "ffmpeg failed to write the output: exit code 7"


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_rgb_and_full_range_tags(tmp_path, backend):
    info = probe(make_clip(tmp_path / "in.mkv", codec="ffv1", n=2).path)
    out = tmp_path / "rgb.mkv"
    with VideoWriter(out, info, (64, 48), EncodeOptions(backend=backend, codec="ffv1", pix_fmt="bgr0")) as w:
        w.write(torch.rand(3, 48, 64), 0, info.time_base)
    back = read_back(out)
    assert back["pix_fmt"] == "bgr0" and back["colorspace"] == 0 and back["color_range"] == 2


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])  # ffmpeg: full range used to become limited with ffv1
def test_full_range_is_kept(tmp_path, backend):
    full = probe(make_clip(tmp_path / "full.mkv", codec="ffv1", n=2, color={"colorspace": 1, "color_range": 2}).path)
    out = tmp_path / "full_out.mkv"
    with VideoWriter(out, full, (64, 48), EncodeOptions(backend=backend, codec="ffv1", pix_fmt="yuv444p")) as w:
        w.write(torch.ones(3, 48, 64), 0, full.time_base)
    back = read_back(out)
    assert back["color_range"] == 2 and back["colorspace"] == 1
    assert np.frombuffer(back["frames"][0].planes[0], np.uint8)[0] == 255  # white stays 255


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_a_jpeg_pixel_format_writes_full_range_codes_from_limited_input(tmp_path, backend):
    """--pix-fmt yuvj444p on limited-range input: full-range codes under the full-range tag (they used to be limited
    codes tagged full, read back with washed-out contrast)."""
    limited = probe(make_clip(tmp_path / "tv.mkv", codec="ffv1", n=2).path)
    assert not limited.color.full_range
    out = tmp_path / "jpeg.mkv"
    x = torch.zeros(3, 48, 64)
    x[:, :, 32:] = 1
    with VideoWriter(out, limited, (64, 48), EncodeOptions(backend=backend, codec="libx264", pix_fmt="yuvj444p", crf=0)) as w:
        w.write(x, 0, limited.time_base)
    back = read_back(out)
    y = np.frombuffer(back["frames"][0].planes[0], np.uint8).reshape(-1, back["frames"][0].planes[0].line_size)[:48, :64]
    assert back["color_range"] == 2
    assert (y[:, :32].max(), y[:, 32:].min()) == (0, 255)


def test_default_replaces_an_existing_output(tmp_path, info):
    out = tmp_path / "o.mkv"
    out.write_bytes(b"old")
    w = VideoWriter(out, info, (64, 48), EncodeOptions(codec="ffv1"))
    assert w.replace is True
    with w:
        w.write(torch.rand(3, 48, 64), 0, TB)
    assert len(read_back(out)["pts"]) == 1


def test_close_twice_and_abort_after_close(tmp_path, info, caplog):
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1"))
    w.open()
    w.write(torch.rand(3, 48, 64), 0, TB)
    assert w.close() == tmp_path / "o.mkv"
    with pytest.raises(AssertionError):
        w.close()
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.io.writer"):
        w.abort()  # nothing left to stop; the published file stays
        w.abort()
    assert not caplog.records
    assert names(tmp_path) == ["in.mp4", "o.mkv"]


def test_abort_survives_a_failing_encoder_and_says_so(tmp_path, info, caplog):
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1"))
    w.open()
    real = w._impl.abort

    def broken():
        real()
        raise RuntimeError("stuck")

    w._impl.abort = broken
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.io.writer"):
        w.abort()
    (rec,) = caplog.records
    assert rec.getMessage() == "writer abort failed" and rec.levelno == logging.DEBUG
    assert rec.exc_info is not None and rec.exc_info[0] is RuntimeError
    assert names(tmp_path) == ["in.mp4"]


def test_abort_warns_when_the_temporary_file_cannot_be_removed(tmp_path, info, caplog, monkeypatch):
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1"))
    w.open()
    tmp = w.tmp
    real = Path.unlink

    def unlink(self, *a, **k):
        if self == tmp:
            raise PermissionError(13, "read-only")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", unlink)
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.io.writer"):
        w.abort()
    assert [r.getMessage() for r in caplog.records] == [f"could not remove temporary file {tmp}"]


def test_abort_after_the_temporary_file_is_gone_is_quiet(tmp_path, info, caplog):
    w = VideoWriter(tmp_path / "o.mkv", info, (64, 48), EncodeOptions(codec="ffv1"))
    w.open()
    w.tmp.unlink()
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.io.writer"):
        w.abort()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("size,pad", [((33, 20), (1, 0)), ((32, 21), (0, 1))])
def test_padding_one_side_only(tmp_path, size, pad):
    w_, h_ = size
    info = probe(make_clip(tmp_path / "odd.mkv", codec="ffv1", size=size, n=2).path)
    w = VideoWriter(tmp_path / "o.mp4", info, size, EncodeOptions(pix_fmt="yuv420p"))
    assert w.plan.pad == pad
    rgb = torch.zeros(3, h_, w_)
    rgb[:, :, -1] = 1.0
    rgb[:, -1, :] = 1.0
    y = w._to_planes(rgb)[0]
    assert y.shape == (h_ + pad[1], w_ + pad[0])
    assert y[0, 0] == 16 and y[0, -1] == 235 and y[-1, 0] == 235


def test_side_packets_of_streams_not_written_are_skipped(tmp_path):
    c = make_clip(tmp_path / "in.mkv", n=12, audio=True, subtitles=True)
    info = probe(c.path)
    out = tmp_path / "o.mkv"
    w = VideoWriter(out, info, (64, 48), EncodeOptions(codec="ffv1", copy_subtitles=False))
    assert w.plan.side_streams == (1,)
    from vsr_pipeline.io.reader import VideoReader

    r = VideoReader(c.path, side_streams=(1, 2), info=info)  # subtitles read but not written
    with w:
        for f in r:
            w.write(f.rgb, f.pts, f.time_base, f.side_packets)
        w._impl.close(r.trailing_packets)
        w._impl.close = lambda trailing: None
    src = read_back(c.path)
    back = read_back(out)
    assert back["subtitle_streams"] == 0 and back["audio_packets"] == src["audio_packets"]


def _side_times(path: Path):
    with av.open(str(path)) as c:
        return [(p.stream.index, float(p.pts * p.time_base)) for p in c.demux() if p.size and p.pts is not None]


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_cut_side_streams(tmp_path, ext):
    c = make_clip(tmp_path / f"in{ext}", n=25, audio=True)
    src_times = [t for i, t in _side_times(c.path) if i == 1]
    cut = cut_side_streams(c.path, (1,), (0.32, 0.4))
    try:
        assert cut.suffix == ext and cut.parent != tmp_path and cut.name.startswith("vsrpipe-side-")
        got = _side_times(cut)
        assert {i for i, _ in got} == {0}  # the one side stream, renumbered
        want = [t - 0.32 for t in src_times if 0.32 - 1e-6 <= t < 0.72]
        assert [t for _, t in got] == pytest.approx(want, abs=2e-3)
        with av.open(str(cut)) as cc:
            assert cc.streams[0].type == "audio"
    finally:
        cut.unlink()
    whole = cut_side_streams(c.path, (1,), (0.0, None))
    try:
        kept = [t for t in src_times if t >= -1e-6]  # the encoder's priming packet before 0 is dropped
        assert len(kept) < len(src_times)
        assert [t for _, t in _side_times(whole)] == pytest.approx(kept, abs=2e-3)
        if ext == ".mp4":  # (Matroska adds the codec delay to the start time)
            assert kept[0] == 0.0 and wr._start_time_us(whole) == 0
    finally:
        whole.unlink()
    end = src_times[6]  # a packet exactly at the end of the section is left out
    upto = cut_side_streams(c.path, (1,), (0.0, end))
    try:
        assert [t for _, t in _side_times(upto)] == pytest.approx([t for t in src_times if -1e-6 <= t < end], abs=2e-3)
    finally:
        upto.unlink()


def test_cut_side_streams_without_a_writable_format_uses_matroska(tmp_path):
    c = make_clip(tmp_path / "in.mkv", n=5, audio=True)
    odd = tmp_path / "in.unknownext"
    odd.write_bytes(c.path.read_bytes())
    cut = cut_side_streams(odd, (1,), (0.0, None))
    try:
        assert cut.suffix == ".unknownext"
        with av.open(str(cut)) as cc:
            assert "matroska" in cc.format.name and len(cc.streams.audio) == 1
    finally:
        cut.unlink()


def test_cut_side_streams_removes_its_file_on_error(tmp_path, monkeypatch):
    import tempfile

    made = []
    real = tempfile.mkstemp

    def mkstemp(*a, **k):
        fd, name = real(*a, dir=tmp_path, **{k_: v for k_, v in k.items() if k_ != "dir"})
        made.append(Path(name))
        return fd, name

    monkeypatch.setattr(wr.tempfile, "mkstemp", mkstemp)
    c = make_clip(tmp_path / "in.mkv", n=5, audio=True)
    with pytest.raises(Exception):
        cut_side_streams(c.path, (7,), (0.0, None))  # no stream 7
    assert made and not made[0].exists()
