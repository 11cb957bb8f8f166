"""vsr_pipeline.io.reader piece by piece: pixel formats, line padding, rotation, stats, sections.

Fast checks on frames built in memory (no file) with exact expected values; the decoding
loop itself is exercised on real files in test_reader.py, test_damage_counts.py and
test_section_and_tags.py.
"""

import logging
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from clips import make_clip
from vsr_pipeline.errors import DecodeError, InputError
from vsr_pipeline.io.color import ColorSpec, gray_to_rgb, yuv_to_rgb
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import Frame, ReadStats, VideoReader, frame_to_rgb, rotate

W, H = 18, 10  # odd chroma width and rows padded to the line size: the padding must be dropped


def _frame(fmt: str, planes: list[np.ndarray]) -> av.VideoFrame:
    """A frame of ``fmt`` whose planes hold exactly ``planes`` (each (h, w)), line padding zero-filled."""
    frame = av.VideoFrame(W, H, fmt)
    for dst, src in zip(frame.planes, planes):
        stride = dst.line_size // src.dtype.itemsize
        padded = np.zeros((src.shape[0], stride), src.dtype)
        padded[:, : src.shape[1]] = src
        dst.update(padded.tobytes())
    return frame


def _random_yuv(depth: int, sub: tuple[int, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    top = (1 << depth) - 1
    dtype = np.uint8 if depth <= 8 else np.uint16
    cw, ch = -(-W // (1 << sub[0])), -(-H // (1 << sub[1]))
    return (rng.integers(0, top + 1, (H, W)).astype(dtype), rng.integers(0, top + 1, (ch, cw)).astype(dtype),
            rng.integers(0, top + 1, (ch, cw)).astype(dtype))


def _t(a):
    return torch.from_numpy(a.astype(np.int32))


@pytest.mark.parametrize("fmt,depth,sub", [("yuv420p", 8, (1, 1)), ("yuv422p", 8, (1, 0)), ("yuv444p", 8, (0, 0)),
                                           ("yuv420p10le", 10, (1, 1)), ("yuv444p12le", 12, (0, 0))])
def test_planar_yuv_samples_reach_the_matrix_exactly(fmt, depth, sub):
    y, u, v = _random_yuv(depth, sub)
    spec = ColorSpec(matrix="bt709", full_range=True, bit_depth=depth)
    got = frame_to_rgb(_frame(fmt, [y, u, v]), spec)
    assert got.shape == (3, H, W)
    assert torch.equal(got, yuv_to_rgb(_t(y), _t(u), _t(v), spec))


@pytest.mark.parametrize("fmt,depth", [("gray", 8), ("gray10le", 10), ("gray12le", 12)])
def test_gray_samples_exactly(fmt, depth):
    y = _random_yuv(depth, (0, 0))[0]
    spec = ColorSpec(bit_depth=depth)
    got = frame_to_rgb(_frame(fmt, [y]), spec)
    assert torch.equal(got, gray_to_rgb(_t(y), spec))


@pytest.fixture
def fresh_swscale():
    """Start from a fresh swscale context: PyAV keeps one per thread and reuses it, and after other
    conversions in the same process p010le was seen to come back with pixels off by up to 0.54
    (issue 18 finding, not yet explained)."""
    from av.video import frame as avframe

    avframe._thread_local.reformatter = None
    yield


@pytest.mark.parametrize("semi,planar,depth", [("nv12", "yuv420p", 8), ("nv21", "yuv420p", 8), ("p010le", "yuv420p10le", 10)])
def test_semi_planar_formats_read_like_their_planar_twin(semi, planar, depth, fresh_swscale):
    y, u, v = _random_yuv(depth, (1, 1), seed=1)
    twin = _frame(planar, [y, u, v])
    spec = ColorSpec(matrix="bt601", bit_depth=depth)
    want = frame_to_rgb(twin, spec)
    got = frame_to_rgb(twin.reformat(format=semi), spec)
    # swscale's repacking is exact on a fresh context, within a code value on a reused one
    assert (got - want).abs().max() < 0.01


# issue 18 finding, fixed: nv16/nv24 were converted to yuv444p16le but read with the 8-bit levels
@pytest.mark.parametrize("semi", ["nv16", "nv24"])
def test_semi_planar_422_444_read_like_planar(semi):
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 6 + 30, yy * 10 + 40, np.full_like(xx, 120)], -1).astype(np.uint8)
    planar = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p", dst_colorspace="ITU601")
    spec = ColorSpec(matrix="bt601")
    got = frame_to_rgb(planar.reformat(format=semi), spec)
    assert (got - frame_to_rgb(planar, spec)).abs().max() < 0.02


def test_big_endian_and_palette_go_through_16_bit_rgb():
    y, u, v = _random_yuv(10, (1, 1), seed=2)
    be = _frame("yuv420p10be", [p.astype(">u2") for p in (y, u, v)])
    want = be.to_ndarray(format="rgb48le").astype(np.float32) / 65535
    got = frame_to_rgb(be, ColorSpec(bit_depth=10))
    assert got.shape == (3, H, W) and got.dtype == torch.float32 and got.is_contiguous()
    assert np.array_equal(got.permute(1, 2, 0).numpy(), want)

    gray_be = _frame("gray10be", [y.astype(">u2")])
    want = gray_be.to_ndarray(format="rgb48le").astype(np.float32) / 65535
    assert np.array_equal(frame_to_rgb(gray_be, ColorSpec(bit_depth=10)).permute(1, 2, 0).numpy(), want)

    palette = np.zeros((256, 4), np.uint8)
    palette[1], palette[2] = (255, 200, 30, 90), (255, 10, 220, 40)
    index = np.ones((H, W), np.uint8)
    index[:, W // 2 :] = 2
    pal = av.VideoFrame.from_ndarray((index, palette), format="pal8")
    got = frame_to_rgb(pal, ColorSpec())
    want = pal.to_ndarray(format="rgb24").astype(np.float32) / 255  # 8-bit view of the same colours
    assert got.shape == (3, H, W) and got.is_contiguous()
    assert np.abs(got.permute(1, 2, 0).numpy() - want).max() < 2 / 255  # swscale: not exactly ×257
    assert len(np.unique(want.reshape(-1, 3), axis=0)) == 2


def test_rgb_frames_are_unpacked_without_a_matrix():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    got = frame_to_rgb(av.VideoFrame.from_ndarray(rgb, format="rgb24"), ColorSpec(matrix="bt2020"))
    assert np.array_equal(np.round(got.permute(1, 2, 0).numpy() * 255).astype(np.uint8), rgb)


@pytest.mark.parametrize("rotation,k", [(0, 0), (90, 1), (180, 2), (270, 3), (-90, 3)])
def test_rotate(rotation, k):
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    got = rotate(x, rotation)
    assert torch.equal(got, torch.rot90(x, k=k, dims=(1, 2)))
    assert got.is_contiguous()
    if rotation == 0:
        assert got is x
    if rotation == 90:  # counter-clockwise: the top row becomes the left column, read bottom-up
        assert got[0, :, 0].tolist() == [3.0, 2.0, 1.0, 0.0]


def test_read_stats_lost():
    assert ReadStats().lost == 0
    assert ReadStats(errors=2).lost == 2
    assert ReadStats(decoded=7, expected=10).lost == 3
    assert ReadStats(decoded=7, expected=10, errors=5).lost == 5
    assert ReadStats(decoded=12, expected=10).lost == 0  # more than promised is not a loss
    assert ReadStats(decoded=7, expected=10, errors=2).lost == 3


def test_frame_time():
    f = Frame(index=0, pts=3, time_base=Fraction(1, 25), rgb=torch.zeros(3, 1, 1))
    assert f.time == pytest.approx(0.12) and f.side_packets == [] and f.duration is None


# the reader on files ------------------------------------------------------------------------

def test_reader_defaults_and_whole_file_section(clip):
    r = VideoReader(str(clip.path))
    assert r.start == 0.0 and r.duration is None and r.on_error == "stop" and r.side_streams == ()
    assert r.section == (0.0, None)
    frames = list(r)
    assert [f.index for f in frames] == list(range(10))
    assert r.stats.decoded == 10 and r.stats.expected == 10 and r.stats.lost == 0
    assert r.first_time is None and r.section == (0.0, None)  # first_time is only taken with --start
    assert [f.duration for f in frames] == [frames[0].duration] * 10 and frames[0].duration > 0


def test_reader_section_timing(tmp_path):
    c = make_clip(tmp_path / "c.mp4", n=25)  # 25 fps: frame i at i/25 s
    r = VideoReader(c.path, start=0.3, duration=0.4)
    assert r.section == (0.0, 0.7)  # before the first frame is read
    frames = list(r)
    assert len(frames) == 10  # 0.32 .. 0.68
    assert r.first_time == pytest.approx(0.32) and r.section == pytest.approx((0.32, 0.38))
    assert frames[0].pts == 0 and frames[-1].time == pytest.approx(0.36)
    assert r.stats.expected is None and r.stats.decoded == 10
    assert torch.equal(frames[0].rgb, list(VideoReader(c.path))[8].rgb)  # the same picture as frame 8

    r = VideoReader(c.path, duration=0.2)
    assert len(list(r)) == 5 and r.section == (0.0, 0.2) and r.stats.expected is None
    r = VideoReader(c.path, start=0.9)
    assert len(list(r)) == 2 and r.section == (pytest.approx(0.92), None)
    r = VideoReader(c.path, start=0.5, duration=10)
    assert len(list(r)) == 12 and r.section == pytest.approx((0.52, 9.98))


def test_nothing_after_start(tmp_path):
    c = make_clip(tmp_path / "c.mp4", n=5)
    with pytest.raises(InputError) as err:
        list(VideoReader(c.path, start=3))
    assert str(err.value) == f"Input file {str(c.path)!r} has no frames after --start 3 s."


def test_stopping_early_ends_the_decode_thread(tmp_path):
    c = make_clip(tmp_path / "c.mp4", n=30)
    r = VideoReader(c.path, prefetch=1)
    it = iter(r)
    first = next(it)
    assert first.index == 0
    it.close()  # the consumer stops: the producer, blocked on a full queue, must end
    assert r.stats.decoded < 30
    import threading

    assert not [t for t in threading.enumerate() if t.name == "vsrpipe-decode"]


def test_side_packets_ride_along_and_are_shifted(tmp_path):
    c = make_clip(tmp_path / "c.mkv", n=25, audio=True)
    info = probe(c.path)
    whole = VideoReader(c.path, side_streams=(1,), info=info)
    frames = list(whole)
    packets = [p for f in frames for _, p in f.side_packets] + [p for _, p in whole.trailing_packets]
    assert packets and all(i == 1 for f in frames for i, _ in f.side_packets)
    assert all(p.size > 0 and p.pts is not None for p in packets)
    audio_times = [float(p.pts * p.time_base) for p in packets]

    r = VideoReader(c.path, start=0.3, duration=0.4, side_streams=(1,), info=info)
    got = list(r)
    side = [p for f in got for _, p in f.side_packets] + [p for _, p in r.trailing_packets]
    times = [float(p.pts * p.time_base) for p in side]
    begin = 0.32
    want = [t - begin for t in audio_times if begin - 1e-6 <= t < 0.7]
    assert times == pytest.approx(want, abs=1e-3)
    assert all(p.dts is None or p.dts == p.pts for p in side)
    assert VideoReader(c.path, side_streams=(1,), info=info)._shift_side([]) == []


def test_truncated_file_messages(tmp_path):
    c = make_clip(tmp_path / "full.mkv", n=40)
    data = c.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    info = probe(cut)
    r = VideoReader(cut, info=info)
    with pytest.raises(DecodeError) as err:
        list(r)
    d = r.stats.decoded
    assert str(err.value) == (
        f"Input file {str(cut)!r} ends early: only {d} of about {r.stats.expected} frames could be decoded "
        f"({r.stats.lost} lost); rerun with --on-error skip to keep what decodes."
    )
    assert r.stats.expected == d + r.stats.lost and r.stats.lost > 1 and r.stats.errors == 0


def test_damaged_packet_messages(clip, caplog):
    exc = av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
    stop = VideoReader(clip.path)
    with pytest.raises(DecodeError) as err:
        stop._damaged(exc, 4)
    assert str(err.value) == (
        f"Input file {str(clip.path)!r} is damaged after frame 4 (Invalid data found when processing input); "
        "rerun with --on-error skip to keep what decodes."
    )
    assert err.value.__cause__ is exc and stop.stats.errors == 1
    skip = VideoReader(clip.path, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.io.reader"):
        skip._damaged(exc, 2)
        skip._damaged(exc, 7)
    assert skip.stats.errors == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"{clip.path}: skipping a damaged packet after frame {i} (Invalid data found when processing input)" for i in (2, 7)
    ]


def test_frames_without_timestamps_are_numbered_at_the_frame_rate(tmp_path):
    """A raw H.264 stream has no timestamps: frame i gets i frame durations in the stream's time base."""
    path = make_clip(tmp_path / "raw.h264", n=5).path
    with av.open(str(path)) as c:
        assert [f.pts for f in c.decode(video=0)] == [None] * 5
    info = probe(path)
    step = round(1 / (float(info.fps) * info.time_base))
    assert step > 1
    frames = list(VideoReader(path, info=info))
    assert [f.pts for f in frames] == [i * step for i in range(5)]
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(5)])


def test_side_packets_of_other_streams_and_of_sections(tmp_path):
    c = make_clip(tmp_path / "c.mkv", n=25, audio=True, subtitles=True)
    info = probe(c.path)

    def side_times(r):
        got = list(r)
        items = [p for f in got for p in f.side_packets] + r.trailing_packets
        assert {i for i, _ in items} == {1}  # only the stream asked for, not the subtitles
        return [float(p.pts * p.time_base) for _, p in items]

    whole = side_times(VideoReader(c.path, side_streams=(1,), info=info))
    assert min(whole) < 0  # the encoder's priming packet before 0 rides along untouched
    start_only = side_times(VideoReader(c.path, start=0.3, side_streams=(1,), info=info))
    assert start_only == pytest.approx([t - 0.32 for t in whole if t >= 0.32 - 1e-6], abs=1e-3)
    duration_only = side_times(VideoReader(c.path, duration=0.4, side_streams=(1,), info=info))
    assert duration_only == pytest.approx([t for t in whole if -1e-6 <= t < 0.4], abs=1e-3)


@pytest.mark.parametrize("semi,planar,depth,sub", [
    ("nv12", "yuv420p", 8, (1, 1)), ("nv21", "yuv420p", 8, (1, 1)), ("nv16", "yuv422p", 8, (1, 0)),
    ("nv24", "yuv444p", 8, (0, 0)), ("p010le", "yuv420p10le", 10, (1, 1)), ("p016le", "yuv420p16le", 16, (1, 1)),
])
def test_semi_planar_frames_read_exactly_like_their_planar_twin(semi, planar, depth, sub):
    """The chroma is only deinterleaved: same subsampling, same depth, the same RGB bit for bit."""
    frame = _frame(planar, list(_random_yuv(depth, sub, seed=5)))
    spec = ColorSpec(matrix="bt709", bit_depth=depth)
    assert torch.equal(frame_to_rgb(frame.reformat(format=semi), spec), frame_to_rgb(frame, spec))
