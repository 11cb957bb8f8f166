"""Probe a video file: geometry, timing, colour, rotation and the other streams it holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from vsr_pipeline.errors import InputError
from vsr_pipeline.io.color import ColorSpec, resolve_matrix
from vsr_pipeline.io.hdr import ContentLight, MasteringDisplay, read_hdr

log = logging.getLogger(__name__)

# Demuxers that read single pictures; a "video" made of one still is refused.
_IMAGE_DEMUXERS = {"image2", "image2pipe", "gif_pipe", "tiff_pipe", "webp_pipe"}
_FULL_RANGE_FORMATS = ("yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p")


@dataclass(frozen=True)
class StreamInfo:
    """An audio or subtitle stream, as listed by probe."""

    index: int  # stream index in the container
    kind: str  # "audio" or "subtitle"
    codec: str  # codec name, e.g. "aac", "mov_text"
    language: str | None = None  # ISO 639 code if tagged
    channels: int | None = None  # audio only
    sample_rate: int | None = None  # audio only


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a file; the first video stream is the one used."""

    path: Path  # the file probed
    container: str  # demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    width: int  # stored width (before rotation)
    height: int  # stored height (before rotation)
    fps: Fraction | None  # average frame rate; None when the file does not say
    time_base: Fraction  # time base of the video stream's timestamps
    duration: float | None  # seconds, whole file; None when unknown
    video_duration: float | None  # seconds the video stream lasts, when the file says
    frame_count: int | None  # from the header; None when the file does not say
    pix_fmt: str  # decoded pixel format, e.g. "yuv420p10le"
    bit_depth: int  # bits per sample of the decoded format
    color: ColorSpec  # matrix, range and depth used to convert to RGB
    color_primaries: int  # AVColorPrimaries tag (2 = unspecified), carried to the output
    color_trc: int  # AVColorTransferCharacteristic tag (2 = unspecified), carried over
    color_tagged: bool  # False when the matrix was assumed (BT.601 SD / BT.709 HD)
    rotation: int  # display rotation in degrees (0, 90, 180, 270), applied by the reader
    codec: str  # video codec name
    audio: tuple[StreamInfo, ...] = field(default=())  # audio streams
    subtitles: tuple[StreamInfo, ...] = field(default=())  # subtitle streams
    mastering_display: MasteringDisplay | None = None  # HDR10 static metadata of the first frame, carried over
    content_light: ContentLight | None = None  # HDR10 content light level of the first frame, carried over
    sequence: object | None = None  # an image sequence's listing (io.sequence.ImageSequence); None for a video file

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) after rotation, i.e. the size of the frames the reader yields."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing, turning every failure into one :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Input file {str(path)!r} does not exist.")
    if path.is_dir():
        raise InputError(f"Input {str(path)!r} is a folder, not a video file; give one video file.")
    try:
        return av.open(str(path), mode="r")
    except av.error.EOFError as exc:
        if path.stat().st_size == 0:
            raise InputError(f"Input file {str(path)!r} is empty, not a video.") from exc
        raise InputError(f"Input file {str(path)!r} holds no video frames (it ends before the first one).") from exc
    except PermissionError as exc:
        raise InputError(f"Input file {str(path)!r} cannot be read: permission denied.") from exc
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Input file {str(path)!r} is not a video FFmpeg can read ({_reason(exc)}).") from exc


def count_packets(path: Path | str) -> int:
    """Video frames in the file ``path``, counted by demuxing its first video stream (no decoding)."""
    with open_input(Path(path)) as container:
        if not container.streams.video:
            raise InputError(f"Input file {str(path)!r} has no video stream.")
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().rstrip(".") or type(exc).__name__


def bit_depth_of(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for yuv420p, 10 for yuv420p10le, ...)."""
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return 8


def probe(path: Path | str) -> VideoInfo:
    """Read the header and the first frame of ``path`` and describe its video.

    Raises :class:`InputError` when the file is missing, unreadable, not a video (text,
    still image, audio only) or holds no decodable frame.
    """
    path = Path(path)
    container = open_input(path)
    try:
        return _probe_open(path, container)
    finally:
        container.close()


def _probe_open(path: Path, container: av.container.InputContainer) -> VideoInfo:
    fmt = container.format.name
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise InputError(f"Input file {str(path)!r} has no video stream (it holds {', '.join(kinds)}).")
    if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        raise InputError(f"Input file {str(path)!r} is a still image ({fmt}), not a video.")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    first = None
    try:
        for first in container.decode(stream):
            break
    except av.error.FFmpegError as exc:
        raise InputError(f"Input file {str(path)!r} could not be decoded ({_reason(exc)}).") from exc
    if first is None:
        raise InputError(f"Input file {str(path)!r} holds no video frames.")

    pix_fmt = first.format.name
    depth = bit_depth_of(pix_fmt)
    tagged = first.colorspace in (1, 4, 5, 6, 7, 9, 10)
    full = first.color_range == 2 or pix_fmt.startswith(_FULL_RANGE_FORMATS)
    color = ColorSpec(matrix=resolve_matrix(first.colorspace, first.height), full_range=full, bit_depth=depth)
    rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
    if rotation not in (0, 90, 180, 270):
        log.warning("%s: display rotation %d° is not a multiple of 90°; ignored", path, rotation)
        rotation = 0
    mastering_display, content_light = read_hdr(first)

    time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    fps = Fraction(stream.average_rate) if stream.average_rate else None
    if container.duration:
        duration = container.duration / av.time_base
    elif stream.duration:
        duration = float(stream.duration * time_base)
    else:
        duration = None

    video_duration = None
    if stream.duration:
        video_duration = float(stream.duration * time_base)
    elif "DURATION" in stream.metadata:  # Matroska's per-stream tag, "HH:MM:SS.fffffffff"
        try:
            hh, mm, ss = stream.metadata["DURATION"].split(":")
            video_duration = int(hh) * 3600 + int(mm) * 60 + float(ss)
        except ValueError:
            pass
    elif len(container.streams) == 1:
        video_duration = duration

    audio, subs = [], []
    for s in container.streams:
        lang = s.language if getattr(s, "language", None) else s.metadata.get("language")
        if s.type == "audio":
            cc = s.codec_context
            audio.append(
                StreamInfo(s.index, "audio", cc.codec.canonical_name, lang, getattr(cc, "channels", None), getattr(cc, "sample_rate", None))
            )
        elif s.type == "subtitle":
            subs.append(StreamInfo(s.index, "subtitle", s.codec_context.codec.canonical_name, lang))

    return VideoInfo(
        path=path,
        container=fmt,
        width=first.width,
        height=first.height,
        fps=fps,
        time_base=time_base,
        duration=duration,
        video_duration=video_duration,
        frame_count=stream.frames or None,
        pix_fmt=pix_fmt,
        bit_depth=depth,
        color=color,
        color_primaries=first.color_primaries,
        color_trc=first.color_trc,
        color_tagged=tagged,
        rotation=rotation,
        codec=stream.codec_context.name,
        audio=tuple(audio),
        subtitles=tuple(subs),
        mastering_display=mastering_display,
        content_light=content_light,
    )
