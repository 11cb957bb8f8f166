"""Join encoded segment files into one video without re-encoding: the resumable runs' last step.

The segments' video packets are copied in order with decode timestamps rebuilt for the
joined stream, and the audio and subtitle packets of the source are muxed once, with their
own timestamps. The output is written beside the target, fsynced and published atomically.
"""

from __future__ import annotations

import contextlib
import heapq
from pathlib import Path
from typing import Callable, Iterator

import av

from vsr_pipeline.errors import OutputError
from vsr_pipeline.io.encoding import plan_output
from vsr_pipeline.io.files import atomic_output, fsync_file
from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.io.probe import VideoInfo, open_input

__all__ = ["join_video"]


def join_video(src: Path, info: VideoInfo, encode: EncodeOptions, files: list[Path], dst: Path, size: tuple[int, int],
               *, replace: bool, expected: int | None = None, before_publish: Callable[[], None] | None = None,
               at_half: Callable[[], None] | None = None) -> int:
    """Join the encoded segment ``files`` into ``dst`` without re-encoding, with ``src``'s audio and subtitles.

    ``size`` is the (width, height) of the output frames. The file is written beside
    ``dst``, fsynced and published atomically (``replace``: may replace an existing
    file) — only when it holds ``expected`` frames (when given) and ``before_publish()``
    (when given) has not raised; otherwise nothing appears at ``dst``. ``at_half()`` (when
    given) is called when half the frames are muxed (batch's fault injection). Returns the
    number of video frames joined.
    """
    plan = plan_output(dst, info, size, encode)
    frames = 0
    with atomic_output(dst, replace=replace) as tmp, contextlib.ExitStack() as opened:
        try:
            out = opened.enter_context(
                av.open(str(tmp), mode="w", format=plan.muxer, container_options=dict(plan.format_options) or None)
            )
            source = opened.enter_context(open_input(src)) if plan.side_streams else None
            with av.open(str(files[0])) as first:
                template = first.streams.video[0]
                vout = out.add_stream_from_template(template)
                vout.time_base = template.time_base
            side = {i: out.add_stream_from_template(source.streams[i]) for i in plan.side_streams}
            half = max(1, (info.frame_count or 2) // 2)
            video = _video_packets(files)
            extra = _side_packets(source, plan.side_streams) if source is not None else iter(())
            for kind, packet in heapq.merge(video, extra, key=lambda kp: _when(kp[1])):
                packet.stream = vout if kind == "video" else side[kind]
                out.mux(packet)
                if kind == "video":
                    frames += 1
                    if frames == half and at_half is not None:
                        at_half()
        except av.error.FFmpegError as exc:
            raise OutputError(f"Joining the segments of {str(dst)!r} failed ({exc}).") from exc
        opened.close()  # every container closed (the output's trailer written) before the fsync
        if expected is not None and frames != expected:
            raise OutputError(
                f"Joining the segments of {str(dst)!r} gave {frames} frames where {expected} were planned; "
                "nothing was published. Run again: segments that do not match their record are encoded anew."
            )
        if before_publish is not None:
            before_publish()
        fsync_file(tmp)
    fsync_file(dst.parent)
    return frames


def _when(packet) -> float:
    t = packet.dts if packet.dts is not None else packet.pts
    return float((t or 0) * packet.time_base)


def _video_packets(files: list[Path]) -> Iterator[tuple[str, object]]:
    """The video packets of every segment file in order, with decode timestamps for the joined stream.

    Each segment's encoder started its own decode timeline (and Matroska stores none), so
    the decode timestamps are rebuilt the way a muxer does for one stream: packet i decodes
    at the i-th smallest presentation time, ``delay`` packets back — the smallest delay
    that keeps every packet's decode time at or before its presentation time.
    """
    order: list[list[int]] = []  # presentation timestamps, per file, in decode order
    for path in files:
        with av.open(str(path)) as c:
            pts = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
        if any(t is None for t in pts):
            raise OutputError(f"Segment {str(path)!r} has packets without timestamps; it cannot be joined.")
        order.append(pts)
    delay = 0
    for pts in order:
        rank = {t: r for r, t in enumerate(sorted(pts))}
        delay = max([delay] + [j - rank[t] for j, t in enumerate(pts)])
    timeline = sorted(t for pts in order for t in pts)
    step = (timeline[1] - timeline[0]) if len(timeline) > 1 else 1
    i = 0
    for path in files:
        with av.open(str(path)) as c:
            for packet in c.demux(c.streams.video[0]):
                if packet.size == 0:  # the demuxer's empty flush packet
                    continue
                packet.dts = timeline[i - delay] if i >= delay else timeline[0] - (delay - i) * step
                i += 1
                yield "video", packet


def _side_packets(source, indices: tuple[int, ...]) -> Iterator[tuple[int, object]]:
    """The audio/subtitle packets of ``source`` (streams ``indices``), as the reader keeps them."""
    for packet in source.demux([source.streams[i] for i in indices]):
        if packet.size and packet.pts is not None:
            yield packet.stream.index, packet
