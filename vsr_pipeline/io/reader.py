"""Streaming reader: PyAV demux + threaded decode, frames out as RGB float tensors.

Decoding runs in a background thread with FFmpeg's own frame/slice threading, so that it
overlaps the network. Memory is bounded by a small queue. Audio and subtitle packets met
while demuxing ride along with the next video frame (``Frame.side_packets``) so that the
writer can mux them interleaved, without re-encoding and without a second pass.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import torch

from vsr_pipeline.errors import DecodeError, InputError
from vsr_pipeline.io.color import ColorSpec, gray_to_rgb, yuv_to_rgb
from vsr_pipeline.io.probe import VideoInfo, _reason, open_input, probe
from vsr_pipeline.io.rgb import is_exact_rgb, unpack

log = logging.getLogger(__name__)

_END = object()


@dataclass
class Frame:
    """One decoded frame on its way through the pipeline."""

    index: int  # position in the processed sequence, from 0
    pts: int  # presentation timestamp in ``time_base`` (shifted when --start is used)
    time_base: Fraction  # of ``pts``
    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1], rotation applied
    duration: int | None = None  # in time_base, when the container says
    side_packets: list = field(default_factory=list)  # (stream index, av.Packet) demuxed before it

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


@dataclass
class ReadStats:
    """What the reader met; filled while iterating."""

    decoded: int = 0  # frames yielded
    errors: int = 0  # packets the decoder rejected
    corrupt: int = 0  # frames the decoder flagged as corrupt (concealed)
    expected: int | None = None  # frames the header promises for the range read, if known

    @property
    def lost(self) -> int:
        """Frames lost to damage: rejected packets, or frames missing against the header."""
        missing = (self.expected - self.decoded) if self.expected is not None else 0
        return max(self.errors, missing, 0)


_SEMI_PLANAR = ("nv12", "nv21", "nv16", "nv24", "p010le", "p016le")  # Y plane + one interleaved chroma plane


def _semi_planar(frame: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Y, Cb, Cr samples (int32) of a semi-planar frame: the chroma plane deinterleaved, P010's
    10 bits brought down from the top of their 16. (Done here, not by swscale: exact, and free
    of PyAV's per-thread converter, which can return stale results after a format change.)"""
    name = frame.format.name
    dtype = np.uint8 if name.startswith("nv") else np.uint16
    y = _plane(frame.planes[0], dtype)
    uv = _plane(frame.planes[1], dtype, per_pixel=2)  # Cb Cr Cb Cr ...
    u, v = (uv[:, 1::2], uv[:, 0::2]) if name == "nv21" else (uv[:, 0::2], uv[:, 1::2])
    shift = 16 - frame.format.components[0].bits if dtype is np.uint16 else 0
    return tuple(torch.from_numpy(a.astype(np.int32) >> shift) for a in (y, u, v))


def frame_to_rgb(frame: av.VideoFrame, color: ColorSpec) -> torch.Tensor:
    """Convert a decoded PyAV frame to RGB float (3, H, W) in [0, 1] (no rotation)."""
    fmt = frame.format
    comps = fmt.components
    planar_yuv = (
        not fmt.is_rgb
        and not fmt.has_palette
        and len(frame.planes) >= 3
        and len(comps) >= 3
        and not fmt.name.endswith("be")
    )
    if planar_yuv:
        dtype = np.uint8 if comps[0].bits <= 8 else np.uint16
        y, u, v = (torch.from_numpy(_plane(frame.planes[i], dtype).astype(np.int32)) for i in range(3))
        return yuv_to_rgb(y, u, v, color)
    if len(comps) == 1 and not fmt.is_rgb and not fmt.has_palette and not fmt.name.endswith("be"):
        dtype = np.uint8 if comps[0].bits <= 8 else np.uint16
        return gray_to_rgb(torch.from_numpy(_plane(frame.planes[0], dtype).astype(np.int32)), color)
    if fmt.name in _SEMI_PLANAR:
        return yuv_to_rgb(*_semi_planar(frame), color)
    if is_exact_rgb(fmt.name):  # RGB samples as they are: no matrix, no swscale rounding
        return unpack(frame)
    # palette and anything exotic: swscale to 16-bit RGB keeps >8-bit precision.
    arr = frame.to_ndarray(format="rgb48le")  # (H, W, 3) uint16
    return torch.from_numpy(arr.astype(np.float32) / 65535.0).permute(2, 0, 1).contiguous()


def _plane(plane, dtype, per_pixel: int = 1) -> np.ndarray:
    """A plane's samples as (height, width · per_pixel), dropping the line padding."""
    item = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype=dtype)
    return arr.reshape(plane.height, plane.line_size // item)[:, : plane.width * per_pixel]


def rotate(rgb: torch.Tensor, rotation: int) -> torch.Tensor:
    """Apply a display rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    if rotation == 0:
        return rgb
    return torch.rot90(rgb, k=rotation // 90, dims=(1, 2)).contiguous()


class VideoReader:
    """Iterate over the frames of a video as :class:`Frame` objects.

    ``start``/``duration`` (seconds) select a section: the frames whose time lies in
    [start, start + duration). All timestamps are then shifted back by the time of the
    section's first frame, so that the output begins at exactly 0 (``--start 2.02`` on 25
    fps starts at the frame at 2.04 s, which becomes 0); side packets before that frame
    are dropped. :attr:`section` gives (first frame's time, what remains of the duration).
    ``on_error`` is ``"stop"`` (raise :class:`DecodeError` at the first damaged packet) or
    ``"skip"`` (drop it, count it in :attr:`stats`). ``side_streams`` lists the indices of
    audio/subtitle streams whose packets should ride along with the frames.
    """

    first_number = 1  # a video's frames are numbered from 1 when written as an image sequence (as FFmpeg does)

    def __init__(
        self,
        path: Path | str,
        *,
        start: float | None = None,
        duration: float | None = None,
        on_error: str = "stop",
        side_streams: tuple[int, ...] = (),
        prefetch: int = 6,
        info: VideoInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.start = start or 0.0
        self.duration = duration
        self.on_error = on_error
        self.side_streams = tuple(side_streams)
        self.prefetch = prefetch
        self.stats = ReadStats()
        self.trailing_packets: list = []  # side packets after the last frame
        self.first_time: float | None = None  # source time (s) of the section's first frame, once read
        self._shift_s = 0.0  # seconds every timestamp is shifted back by
        self._stop = threading.Event()

    @property
    def section(self) -> tuple[float, float | None]:
        """(start, duration) in source seconds of what is read, known once the first frame is out.

        ``start`` is the first frame's time with ``--start`` (else 0); side streams taken
        from the source by another program must be cut the same way to stay in sync.
        """
        begin = self._shift_s if self.start > 0 else 0.0
        if self.duration is None:
            return begin, None
        return begin, max(0.0, self.start + self.duration - begin)

    # The consumer side -------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        self._stop.clear()
        worker = threading.Thread(target=self._decode_into, args=(q,), name="vsrpipe-decode", daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)

    def close(self) -> None:
        """Stop the decode thread (also done when iteration ends)."""
        self._stop.set()

    # The producer side -------------------------------------------------------------
    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode_into(self, q: queue.Queue) -> None:
        try:
            self._decode(q)
        except BaseException as exc:  # hand every failure to the consumer thread
            self._put(q, exc)
            return
        self._put(q, _END)

    def _decode(self, q: queue.Queue) -> None:
        info = self.info
        container = open_input(self.path)
        try:
            vstream = container.streams.video[0]
            vstream.thread_type = "AUTO"
            tb = info.time_base
            side = [container.streams[i] for i in self.side_streams]
            end_s = self.start + self.duration if self.duration is not None else None
            if self.start > 0:
                container.seek(int(self.start / tb), stream=vstream, backward=True, any_frame=False)
            if info.frame_count and not self.start and self.duration is None:
                self.stats.expected = info.frame_count
            index = 0
            shift = None if self.start > 0 else 0  # the first kept frame's pts, with --start
            past_end = False
            pending: list = []
            last_pts: int | None = None
            default_step = int(round(1 / (float(info.fps) * tb))) if info.fps else 1
            demux = container.demux([vstream, *side])
            while True:
                try:
                    packet = next(demux)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:  # damaged container structure
                    self._damaged(exc, index)
                    break
                if self._stop.is_set():
                    return
                if packet.stream.type != "video":
                    if packet.size and packet.pts is not None:
                        # keep the index: the packet outlives this container
                        pending.append((packet.stream.index, packet))
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    self._damaged(exc, index)
                    continue
                for frame in frames:
                    pts = frame.pts if frame.pts is not None else (last_pts + default_step if last_pts is not None else 0)
                    last_pts = pts
                    t = float(pts * tb)
                    if t < self.start - 1e-6:
                        continue
                    if end_s is not None and t >= end_s - 1e-6:
                        past_end = True
                        break
                    if getattr(frame, "is_corrupt", False):
                        self.stats.corrupt += 1
                    if shift is None:
                        shift, self.first_time = pts, t
                        self._shift_s = float(pts * tb)
                    rgb = rotate(frame_to_rgb(frame, info.color), info.rotation)
                    item = Frame(
                        index=index,
                        pts=pts - shift,
                        time_base=tb,
                        rgb=rgb,
                        duration=frame.duration or None,
                        side_packets=self._shift_side(pending),
                    )
                    pending = []
                    index += 1
                    self.stats.decoded = index
                    if not self._put(q, item):
                        return
                if past_end:
                    break
            self.trailing_packets = self._shift_side(pending)
            if index == 0:
                if self.start > 0:
                    raise InputError(f"Input file {str(self.path)!r} has no frames after --start {self.start:g} s.")
                raise InputError(f"Input file {str(self.path)!r} holds no decodable video frames.")
            self._check_truncation(last_pts, end_s)
        finally:
            container.close()

    def _check_truncation(self, last_pts: int | None, end_s: float | None) -> None:
        """Compare what decoded with what the header promised; count the shortfall as lost."""
        info, stats = self.info, self.stats
        if stats.expected is None and info.video_duration and info.fps and last_pts is not None:
            frame_s = 1.0 / float(info.fps)
            last_end = float(last_pts * info.time_base) + frame_s
            until = info.video_duration if end_s is None else min(info.video_duration, end_s)
            if until - last_end > 1.5 * frame_s:
                stats.expected = stats.decoded + max(1, round((until - last_end) / frame_s))
        if stats.lost and self.on_error == "stop" and not stats.errors:
            raise DecodeError(
                f"Input file {str(self.path)!r} ends early: only {stats.decoded} of about {stats.expected} frames "
                f"could be decoded ({stats.lost} lost); rerun with --on-error skip to keep what decodes."
            )

    def _damaged(self, exc: BaseException, index: int) -> None:
        self.stats.errors += 1
        if self.on_error == "stop":
            raise DecodeError(
                f"Input file {str(self.path)!r} is damaged after frame {index} ({_reason(exc)}); "
                "rerun with --on-error skip to keep what decodes."
            ) from exc
        log.warning("%s: skipping a damaged packet after frame %d (%s)", self.path, index, _reason(exc))

    def _shift_side(self, packets: list) -> list:
        """Drop side packets outside the section and shift the rest like the video."""
        if not packets or (self.start <= 0 and self.duration is None):
            return packets
        kept = []
        begin = self._shift_s if self.start > 0 else 0.0
        end_s = self.start + self.duration if self.duration is not None else None
        for item in packets:
            p = item[1]
            t = float(p.pts * p.time_base)
            if t < max(self.start, begin) - 1e-6 or (end_s is not None and t >= end_s):
                continue
            shift = int(round(begin / p.time_base))
            p.pts -= shift
            if p.dts is not None:
                p.dts -= shift
            kept.append(item)
        return kept
