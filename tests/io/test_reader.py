import subprocess
from fractions import Fraction

import numpy as np
import pytest

from clips import make_clip, make_empty_video, make_still, make_wav
from vsr_pipeline.errors import DecodeError, InputError
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.io.encoding import find_ffmpeg


def test_probe_cfr(clip):
    info = probe(clip.path)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == 25
    assert info.frame_count == 10
    assert info.bit_depth == 8
    assert abs(info.duration - 0.4) < 1e-6
    assert info.color.matrix == "bt601" and not info.color_tagged  # untagged SD
    assert info.audio == () and info.subtitles == ()


def test_probe_streams_and_tags(tmp_path):
    c = make_clip(tmp_path / "a b ü.mkv", audio=True, subtitles=True, pix_fmt="yuv420p10le",
                  color={"colorspace": 1, "color_range": 2, "color_primaries": 1, "color_trc": 1})
    info = probe(c.path)
    assert info.bit_depth == 10 and info.pix_fmt == "yuv420p10le"
    assert info.color.matrix == "bt709" and info.color.full_range and info.color_tagged
    assert info.color_primaries == 1 and info.color_trc == 1
    assert [a.codec for a in info.audio] == ["aac"] and info.audio[0].channels == 2
    assert [s.codec for s in info.subtitles] == ["subrip"]
    assert info.frame_count is None  # Matroska does not say; never required
    assert info.video_duration == pytest.approx(0.4)


def test_reader_frames_and_timestamps(clip):
    frames = list(VideoReader(clip.path))
    assert len(frames) == 10
    info = probe(clip.path)
    assert [float(f.pts * f.time_base) for f in frames] == pytest.approx([i / 25 for i in range(10)])
    assert frames[0].rgb.shape == (3, 48, 64)
    ref = clip.frames[3].astype(np.float32) / 255
    got = frames[3].rgb.permute(1, 2, 0).numpy()
    assert np.abs(got - ref).mean() < 0.02  # crf 10 + 4:2:0 chroma
    assert info.time_base == frames[0].time_base


def test_reader_vfr(tmp_path):
    pts = [0, 40, 80, 200, 210, 400, 433]
    c = make_clip(tmp_path / "vfr.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000))
    frames = list(VideoReader(c.path))
    assert [f.pts for f in frames] == pts
    assert frames[0].time_base == Fraction(1, 1000)


def test_reader_ten_bit_precision(tmp_path):
    c = make_clip(tmp_path / "ten.mkv", codec="ffv1", pix_fmt="yuv420p10le", n=2)
    rgb = next(iter(VideoReader(c.path))).rgb
    codes = np.unique(np.round(rgb[1].numpy().ravel() * 1023))
    fractional = np.abs(rgb[1].numpy() * 255 - np.round(rgb[1].numpy() * 255)).max()
    assert fractional > 0.1  # values lie between 8-bit levels: not squeezed through 8 bits
    assert len(codes) > 100


def test_section(tmp_path):
    c = make_clip(tmp_path / "long.mp4", n=50, audio=True)
    r = VideoReader(c.path, start=0.4, duration=0.6, side_streams=(1,))
    frames = list(r)
    assert len(frames) == 15
    assert float(frames[0].pts * frames[0].time_base) == pytest.approx(0.0)
    side = [p for f in frames for p in f.side_packets] + r.trailing_packets
    times = [float(p.pts * p.time_base) for _, p in side]
    assert side and min(times) >= -1e-6 and max(times) < 0.6


def test_rotation_matches_ffmpeg(tmp_path):
    c = make_clip(tmp_path / "rot.mp4", n=1, rotation=90, codec="libx264", options={"qp": "0"}, pix_fmt="yuv444p")
    info = probe(c.path)
    assert info.rotation in (90, 270) and info.display_size == (48, 64)
    ours = next(iter(VideoReader(c.path))).rgb.permute(1, 2, 0).numpy()
    raw = subprocess.run(
        [find_ffmpeg(), "-v", "error", "-i", str(c.path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(64, 48, 3).astype(np.float32) / 255  # autorotated by ffmpeg
    assert np.abs(ours - theirs).mean() < 0.01


@pytest.mark.parametrize("content,what", [(b"hello, this is text\n" * 50, "not a video"), (b"", "not a video")])
def test_not_a_video(tmp_path, content, what):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(InputError, match=what):
        probe(p)


def test_image_and_audio_only(tmp_path):
    with pytest.raises(InputError, match="still image"):
        probe(make_still(tmp_path / "still.png"))
    with pytest.raises(InputError, match="no video stream"):
        probe(make_wav(tmp_path / "tone.wav"))


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        probe(tmp_path / "nope.mp4")


def test_truncated(tmp_path):
    c = make_clip(tmp_path / "full.mkv", n=40)
    data = c.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match=r"ends early.*--on-error skip"):
        list(VideoReader(cut))
    r = VideoReader(cut, on_error="skip")
    got = list(r)
    assert 0 < len(got) < 40
    assert r.stats.lost == pytest.approx(40 - len(got), abs=2)


def test_zero_frames(tmp_path):
    p = make_empty_video(tmp_path / "empty.mkv")
    assert p.stat().st_size > 0
    with pytest.raises(InputError, match="holds no video frames"):
        probe(p)


def test_frame_count_of_a_file_and_of_a_sequence(tmp_path):
    """``frame_count``: a file's video packets (each frame once, no decoding) and a sequence's listing."""
    import numpy as np
    from PIL import Image

    from vsr_pipeline.io.source import frame_count, probe_source

    for n in (1, 7):
        clip = make_clip(tmp_path / f"c{n}.mkv", n=n, size=(32, 24)).path
        assert frame_count(clip, probe_source(clip)) == n
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (1, 2, 3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i:04d}.png")
    assert frame_count(folder, probe_source(folder, fps=24)) == 3
    from vsr_pipeline.io.probe import count_packets

    sound = make_wav(tmp_path / "sound.wav")
    with pytest.raises(InputError, match="has no video stream"):
        count_packets(sound)
