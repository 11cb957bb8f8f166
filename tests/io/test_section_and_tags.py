"""Issue 14, item 12: a section starts at exactly 0, and stream metadata (language tags) is kept."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import av
import pytest
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.cli import main
from vsr_pipeline.io.encoding import find_ffmpeg
from vsr_pipeline.io.reader import VideoReader


def first_times(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        video = [float(f.pts * v.time_base) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [float(p.pts * p.time_base) for p in c.demux(audio=0) if p.size and p.pts is not None] if c.streams.audio else []
    return {"video": video, "audio": audio}


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_section_starts_at_zero(tmp_path, backend):
    c = make_clip(tmp_path / "in.mkv", n=100, audio=True)  # 25 fps: frames at 2.00, 2.04, ...
    out = tmp_path / "out.mkv"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(out), "-s", "1", "-m", "bicubic", "--start", "2.02",
                                  "--duration", "1", "--backend", backend])
    assert r.exit_code == 0, r.output
    t = first_times(out)
    assert t["video"][0] == 0.0  # the frame at 2.04 s, shifted to 0 (not 0.02)
    assert t["video"] == pytest.approx([i * 0.04 for i in range(25)], abs=1e-6)  # frames 2.04 .. 3.00
    assert t["audio"] and min(t["audio"]) >= -0.001 and min(t["audio"]) < 0.03  # audio shifted the same way
    assert max(t["audio"]) < 1.0




def test_reader_section(tmp_path):
    c = make_clip(tmp_path / "in.mkv", n=100)
    reader = VideoReader(c.path, start=2.02, duration=1)
    frames = list(reader)
    assert frames[0].pts == 0 and reader.first_time == pytest.approx(2.04)
    assert reader.section == pytest.approx((2.04, 0.98))
    assert len(frames) == 25


def tag_clip(path: Path, src: Path) -> Path:
    subprocess.run([find_ffmpeg(), "-y", "-loglevel", "error", "-i", str(src), "-c", "copy", "-metadata:s:a:0", "language=fra",
                    "-metadata:s:a:0", "title=Narration", str(path)], check=True)
    return path


@pytest.mark.parametrize("ext", [".mov", ".mkv"])
@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_audio_language_tag_kept(tmp_path, ext, backend):
    c = make_clip(tmp_path / "plain.mp4", n=6, audio=True)
    src = tag_clip(tmp_path / f"in{ext}", c.path)
    out = tmp_path / f"out{ext}"
    r = CliRunner().invoke(main, ["enhance", str(src), str(out), "-s", "1", "-m", "bicubic", "--backend", backend])
    assert r.exit_code == 0, r.output
    with av.open(str(out)) as cont:
        meta = dict(cont.streams.audio[0].metadata)
    assert meta.get("language") == "fra", meta
    if ext == ".mkv":
        assert meta.get("title") == "Narration", meta


def side_packets(path: Path) -> list[tuple[str, float, bytes]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("audio", "subtitle")]
        # per stream in time order; b"\0\0" is an empty mov_text cue (a gap filler mp4 muxers add)
        return sorted((p.stream.type, round(float(p.pts * p.time_base), 6), bytes(p)) for p in c.demux(streams)
                      if p.size and p.pts is not None and bytes(p) != b"\0\0")


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_ffmpeg_backend_cuts_side_streams_like_the_reader(tmp_path, ext):
    """Issue 14 item 12 / issue 18 item 3: with --start/--duration the ffmpeg backend's audio
    and subtitles are the same packets at the same times as the in-process backend's, and its
    temporary copy of them is gone afterwards."""
    c = make_clip(tmp_path / f"in{ext}", n=100, audio=True, subtitles=True)
    outs = {}
    before = set(Path(tempfile.gettempdir()).glob("vsrpipe-side-*"))
    for backend in ("pyav", "ffmpeg"):
        outs[backend] = out = tmp_path / f"out-{backend}{ext}"
        r = CliRunner().invoke(main, ["enhance", str(c.path), str(out), "-s", "1", "-m", "bicubic", "--start", "1.3",
                                      "--duration", "1.5", "--backend", backend])
        assert r.exit_code == 0, r.output
    assert set(Path(tempfile.gettempdir()).glob("vsrpipe-side-*")) == before
    want, got = side_packets(outs["pyav"]), side_packets(outs["ffmpeg"])
    kinds = {k for k, _, _ in want}
    assert kinds == {"audio", "subtitle"}, kinds
    assert 0 <= min(t for _, t, _ in want) < 0.05 and max(t for _, t, _ in want) < 1.5
    assert got == want
    assert first_times(outs["ffmpeg"])["video"] == first_times(outs["pyav"])["video"]


def test_ffmpeg_side_cut_removed_when_the_run_fails(tmp_path, monkeypatch):
    from vsr_pipeline.io import writer

    made = []
    real = writer.cut_side_streams
    monkeypatch.setattr(writer, "cut_side_streams", lambda *a: made.append(real(*a)) or made[-1])
    c = make_clip(tmp_path / "in.mkv", n=50, audio=True)
    out = tmp_path / "out.mkv"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(out), "-s", "1", "-m", "bicubic", "--start", "1",
                                  "--backend", "ffmpeg", "--encoder-args", "-preset nonsense"])
    assert r.exit_code == 4, r.output
    assert made and not made[0].exists()
    assert not out.exists()


@pytest.mark.parametrize("start,duration", [(None, 0.5), (0.1, 0.3), (0.2, 0.2), (None, None)])
def test_the_progress_total_is_the_number_of_frames_the_section_holds(tmp_path, start, duration):
    """A section that ends between two frames holds the frame before its end: 0.5 s of 25 fps is 13 frames
    (0.00 … 0.48), not round(12.5) = 12; the total the progress line shows is what the reader then yields."""
    from vsr_pipeline.io.probe import probe
    from vsr_pipeline.io.transcode import expected_frames

    clip = make_clip(tmp_path / "in.mkv", n=20).path
    info = probe(clip)
    reader = VideoReader(clip, start=start, duration=duration)
    try:
        got = sum(1 for _ in reader)
    finally:
        reader.close()
    assert expected_frames(info, start, duration) == got
    assert got == {(None, 0.5): 13, (0.1, 0.3): 7, (0.2, 0.2): 5, (None, None): 20}[(start, duration)]
