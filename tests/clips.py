"""Synthetic test clips made with PyAV: known frames, timestamps, audio and subtitles."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass
class Clip:
    """What was written, to check what is read back."""

    path: Path
    frames: list[np.ndarray]  # (H, W, 3) uint8 RGB as given to the encoder
    pts: list[int]  # video timestamps in time_base
    time_base: Fraction
    audio_seconds: float | None = None  # duration of the audio written
    subtitles: list[tuple[int, int, str]] = field(default_factory=list)  # (pts ms, duration ms, text)


def pattern(i: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth moving test picture (H, W, 3) uint8 that survives lossy coding well."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin((xx + 3 * i + seed) / 7.0)
    g = 128 + 100 * np.cos((yy - 2 * i) / 5.0)
    b = 128 + 60 * np.sin((xx + yy + 5 * i) / 11.0)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def make_clip(
    path: Path,
    *,
    n: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    subtitles: bool = False,
    options: dict | None = None,
    color: dict | None = None,
    rotation: int = 0,
    seed: int = 0,
) -> Clip:
    """Write a clip of ``n`` frames of :func:`pattern` and return what was written.

    ``pts`` (in ``time_base``) makes a VFR clip; ``audio`` adds an AAC sine track as long
    as the video; ``subtitles`` adds a text track (subrip in mkv, mov_text in mp4/mov).
    ``color`` sets colorspace/color_range/... tags on the stream; ``seed`` gives other pictures.
    """
    w, h = size
    tb = time_base or Fraction(1, fps * 100)
    if pts is None:
        step = int(round(1 / (fps * tb)))
        pts = [i * step for i in range(n)]
    frames = [pattern(i, w, h, seed) for i in range(n)]
    opts = {"crf": "10"} if codec in ("libx264", "libx265") else {}
    opts.update(options or {})
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.codec_context.time_base = tb
        v.time_base = tb
        v.options = opts
        for k, val in (color or {}).items():
            setattr(v.codec_context, k, val)
        if rotation:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "stereo"
        s = None
        subs: list[tuple[int, int, str]] = []
        if subtitles:
            s = c.add_mux_stream("mov_text" if path.suffix in (".mp4", ".mov") else "subrip")
            s.time_base = Fraction(1, 1000)
        for f_np, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(f_np, format="rgb24")
            if "10" in pix_fmt or "12" in pix_fmt:
                frame = frame.reformat(format="rgb48le")
            frame.pts = p
            frame.time_base = tb
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        end_s = float((pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)) * tb)
        audio_s = None
        if a is not None:
            total = int(end_s * 48000)
            t = np.arange(total) / 48000.0
            pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = pcm[start : start + 1024]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([chunk, chunk]).T.reshape(1, -1)), format="flt", layout="stereo")
                af.sample_rate = 48000
                af.pts = start
                for packet in a.encode(af):
                    c.mux(packet)
            for packet in a.encode():
                c.mux(packet)
            audio_s = total / 48000.0
        if s is not None:
            for k in range(2):
                start_ms, dur_ms = int(end_s * 1000 * k / 2), int(end_s * 1000 / 4)
                text = f"line {k}"
                if path.suffix in (".mp4", ".mov"):
                    payload = len(text).to_bytes(2, "big") + text.encode()
                else:
                    payload = text.encode()
                packet = av.Packet(payload)
                packet.stream = s
                packet.pts = packet.dts = start_ms
                packet.duration = dur_ms
                packet.time_base = Fraction(1, 1000)
                c.mux(packet)
                subs.append((start_ms, dur_ms, text))
    return Clip(path=path, frames=frames, pts=list(pts), time_base=tb, audio_seconds=audio_s, subtitles=subs)


def read_back(path: Path) -> dict:
    """Decode a file independently of vsrpipe: video pts, frames, audio/subtitle packet counts."""
    out: dict = {"pts": [], "frames": [], "audio_packets": 0, "subtitle_packets": 0, "audio_end": None}
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        out["time_base"] = Fraction(vs.time_base)
        out["size"] = (vs.codec_context.width, vs.codec_context.height)
        out["pix_fmt"] = vs.codec_context.pix_fmt
        out["colorspace"] = vs.codec_context.colorspace
        out["color_range"] = vs.codec_context.color_range
        out["codec"] = vs.codec_context.name
        out["audio_streams"] = len(c.streams.audio)
        out["subtitle_streams"] = len(c.streams.subtitles)
        for packet in c.demux():
            if packet.stream.type == "video":
                for f in packet.decode():
                    out["pts"].append(f.pts)
                    out["frames"].append(f)
            elif packet.stream.type == "audio" and packet.size:
                out["audio_packets"] += 1
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                out["audio_end"] = max(out["audio_end"] or 0.0, end)
            elif packet.stream.type == "subtitle" and packet.size:
                out["subtitle_packets"] += 1
    return out


def write_rgb(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, options: dict | None = None) -> Path:
    """Encode (H, W, 3) RGB frames (uint8, or uint16 as rgb48le) losslessly in ``pix_fmt`` at 25 fps."""
    h, w = frames[0].shape[:2]
    given = "rgb48le" if frames[0].dtype == np.uint16 else "rgb24"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = options or {}
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format=given)
            if pix_fmt != given:
                frame = frame.reformat(format=pix_fmt)
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_empty_video(path: Path) -> Path:
    """A container with a video stream header and no frames."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    return path


def make_still(path: Path) -> Path:
    """A PNG picture."""
    av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24").to_image().save(path)
    return path


def make_wav(path: Path) -> Path:
    """An audio-only file (0.1 s of silence)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in s.encode(f):
            c.mux(p)
    return path
