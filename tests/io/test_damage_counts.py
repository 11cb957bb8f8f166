"""Damaged input, reproducibly: the damage is detected and the lost frames are counted exactly (issue 18).

Every damaged file is made the same way on every machine: single-threaded x264 (or intra
mjpeg), damage at fixed packets filled with seeded bytes. What the tests expect is worked
out independently of vsrpipe, by decoding the damaged file with PyAV directly.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from click.testing import CliRunner

from clips import make_clip, read_back
from vsr_pipeline.cli import main
from vsr_pipeline.errors import DecodeError
from vsr_pipeline.io.reader import VideoReader

N = 40  # frames written
DAMAGED = (10, 20, 21)  # packets (decode order) whose payload is overwritten


def _clip(path, codec):
    if codec == "mjpeg":
        return make_clip(path, n=N, codec="mjpeg", pix_fmt="yuvj420p")
    return make_clip(path, n=N, options={"threads": "1"})  # one thread: the same bitstream everywhere


def _packets(path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]


def _pyav_decode(path) -> tuple[int, int | None]:
    """(frames PyAV decodes, frames out before the first packet it rejects) — vsrpipe not involved."""
    frames, first_error = 0, None
    with av.open(str(path)) as c:
        for packet in c.demux(c.streams.video[0]):
            try:
                frames += len(packet.decode())
            except av.error.FFmpegError:
                first_error = frames if first_error is None else first_error
    return frames, first_error


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _damage_payloads(src, dst, packets, seed=18):
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    layout = _packets(src)
    for k in packets:
        pos, size = layout[k]
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("codec", ["mjpeg", "libx264"])
def test_damaged_packets_stop_and_skip_count_exactly(tmp_path, codec):
    clip = _clip(tmp_path / "full.mp4", codec)
    bad = _damage_payloads(clip.path, tmp_path / "bad.mp4", DAMAGED)
    decodable, first_error = _pyav_decode(bad)
    assert first_error is not None and decodable == N - len(DAMAGED)  # the damage is real and reproducible

    with pytest.raises(DecodeError, match=rf"damaged after frame {first_error} "):
        list(VideoReader(bad))
    r = _cli("enhance", bad, tmp_path / "stop.mkv", "-s", "2", "--model", "bicubic")
    assert r.exit_code == 6, r.output
    assert f"damaged after frame {first_error} " in r.output and "--on-error skip" in r.output
    assert not (tmp_path / "stop.mkv").exists()

    out, report = tmp_path / "skip.mkv", tmp_path / "run.json"
    r = _cli("enhance", bad, out, "-s", "2", "--model", "bicubic", "--on-error", "skip", "--report", report)
    assert r.exit_code == 0, r.output
    assert len(read_back(out)["pts"]) == decodable
    assert json.loads(report.read_text())["lost_frames"] == N - decodable == len(DAMAGED)
    assert f"{N - decodable} lost to damage" in r.output


def test_truncated_at_a_packet_counts_the_lost_frames(tmp_path):
    clip = _clip(tmp_path / "full.mkv", "libx264")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(clip.path.read_bytes()[: _packets(clip.path)[16][0]])  # ends where packet 16 began
    decodable, _ = _pyav_decode(cut)
    lost = N - decodable
    assert 0 < decodable < N

    r = _cli("enhance", cut, tmp_path / "stop.mkv", "-s", "2", "--model", "bicubic")
    assert r.exit_code == 6, r.output
    assert f"only {decodable} of about {N} frames could be decoded ({lost} lost)" in r.output
    assert not (tmp_path / "stop.mkv").exists()

    out, report = tmp_path / "skip.mkv", tmp_path / "run.json"
    r = _cli("enhance", cut, out, "-s", "2", "--model", "bicubic", "--on-error", "skip", "--report", report)
    assert r.exit_code == 0, r.output
    assert len(read_back(out)["pts"]) == decodable
    assert json.loads(report.read_text())["lost_frames"] == lost


@pytest.mark.xfail(strict=True, reason="issue 18 finding: Matroska blocks lost to damaged block headers are not "
                   "counted (the file has no frame count), so --on-error stop reads 36 of 40 frames without an error")
def test_damaged_matroska_block_headers_are_detected(tmp_path):
    clip = _clip(tmp_path / "full.mkv", "mjpeg")
    data = bytearray(clip.path.read_bytes())
    for k in DAMAGED:
        pos = _packets(clip.path)[k][0]
        data[pos : pos + 16] = bytes(16)  # the block's header: the demuxer loses it
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    decodable, _ = _pyav_decode(bad)
    assert decodable < N
    r = VideoReader(bad, on_error="skip")
    assert len(list(r)) == decodable
    assert r.stats.lost == N - decodable
