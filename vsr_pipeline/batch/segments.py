"""Long files in segments: plan them, encode each to its own durable file, join them without re-encoding.

::

    plan = plan_file(src, info, config, target=1000)             # one decode pass: scene cuts, timestamps
    for i in range(len(plan.segments)):
        encode_segment(src, info, config, plan, i, work / f"seg-{i:05d}.mkv", stage)   # fsynced
    join_segments(src, info, config, [...files...], dst)          # remux + audio/subtitles once, atomic

Why the result equals an uninterrupted run, frame for frame:

* Scene cuts come from the planning pass, which feeds the same detector the same frames
  in the same order as ``vsrpipe enhance`` does, and every segment is told them.
* With ``--adapt`` a border is only ever a scene cut, where windows treat the cut like a
  clip edge and every method restarts its carried state (online chains, scene kernels),
  so a segment starting there sees exactly what the whole run sees. A scene longer than
  the target stays one segment.
* Without adaptation a border may fall inside a scene: the segment then decodes the
  two frames on either side as context, so each window is the one the whole run builds.
  Such borders fall on a multiple of ``--batch`` so batches match too.
* Frames keep their own timestamps; the join copies packets (no re-encode) and muxes the
  audio and subtitle packets of the input once, with their own timestamps.

Segments are sections of the input read by :func:`~vsr_pipeline.io.transcode.transcode`
(``start``/``duration`` at frame timestamps taken from the planning pass), so decoding,
the writer thread and the atomic publish are those of ``enhance``.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vsr_pipeline.batch.faults import fault
from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.errors import DecodeError, OutputError
from vsr_pipeline.io.probe import VideoInfo

log = logging.getLogger(__name__)

CONTEXT = 2  # frames either side of a window's centre (windows are 5 frames)


@dataclass(frozen=True)
class Segment:
    """Frames [first, end) of a file, decoded from frame ``read_from`` up to (not including) ``read_to``."""

    first: int
    end: int
    read_from: int  # first - context (or first at a scene cut / the start)
    read_to: int  # end + context (or end at a scene cut / the end)
    from_pts: int  # timestamp of frame read_from (input time base)
    to_pts: int | None  # timestamp of frame read_to; None: read to the end


@dataclass(frozen=True)
class Plan:
    """How one file is cut: its frame count, scene starts and segments (JSON in the manifest)."""

    frames: int
    starts: list[int]  # first frame of every scene (0 included)
    segments: list[Segment]

    def to_dict(self) -> dict:
        return {"frames": self.frames, "starts": self.starts, "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        return cls(d["frames"], list(d["starts"]), [Segment(**s) for s in d["segments"]])


def borders(frames: int, starts: list[int], target: int, *, inside_scenes: bool, batch: int = 1) -> list[int]:
    """Segment borders (first frames, 0 first) for ``frames`` frames, about ``target`` apart.

    With ``inside_scenes`` False only scene starts are borders (adaptation); otherwise a
    scene start near the goal is preferred, else the goal rounded up to a multiple of ``batch``.
    """
    target = max(1, target)
    out, pos = [0], 0
    while True:
        goal = pos + target
        if frames - goal < max(1, target // 4):  # no short tail segment
            return out
        near = [s for s in starts if goal - target // 4 <= s <= goal + target // 4]
        if near:
            cut = min(near, key=lambda s: abs(s - goal))
        elif not inside_scenes:
            later = [s for s in starts if s > goal]
            if not later:
                return out
            cut = later[0]
        else:
            cut = -(-goal // batch) * batch
        if cut <= pos or cut >= frames:
            return out
        out.append(cut)
        pos = cut


def make_plan(pts: list[int], starts: list[int], target: int, *, inside_scenes: bool, batch: int = 1) -> Plan:
    """The :class:`Plan` for a file whose frames have timestamps ``pts`` and scenes ``starts``."""
    n = len(pts)
    cuts = set(starts)
    edges = borders(n, starts, target, inside_scenes=inside_scenes, batch=batch) + [n]
    segments = []
    for first, end in zip(edges, edges[1:]):
        read_from = first if first == 0 or first in cuts else max(0, first - CONTEXT)
        read_to = end if end == n or end in cuts else min(n, end + CONTEXT)
        segments.append(Segment(first, end, read_from, read_to, pts[read_from], pts[read_to] if read_to < n else None))
    return Plan(n, list(starts), segments)


def plan_file(src: Path, info: VideoInfo, config: EnhanceConfig, target: int) -> Plan:
    """Decode ``src`` once: every frame's timestamp and the scene cuts ``enhance`` would find -> :class:`Plan`."""
    from vsr_pipeline.io.reader import VideoReader
    from vsr_pipeline.io.scenes import SceneConfig, SceneDetector

    detector = SceneDetector(SceneConfig(threshold=config.scene_threshold), fps=float(info.fps or 25))
    pts: list[int] = []
    starts = [0]
    prev = None
    for frame in VideoReader(src, on_error=config.on_error, side_streams=(), info=info):
        if prev is not None and detector(prev, frame):
            starts.append(frame.index)
        pts.append(frame.pts)
        prev = frame
    if len(set(pts)) != len(pts) or pts != sorted(pts):
        return make_plan(pts, starts, len(pts) + 1, inside_scenes=False)  # timestamps we cannot seek by: one segment
    return make_plan(pts, starts, target, inside_scenes=config.adapt.method == "none", batch=config.runner.batch)


def encode_segment(src: Path, info: VideoInfo, config: EnhanceConfig, plan: Plan, idx: int, path: Path, stage,
                   progress=None) -> dict:
    """Upscale segment ``idx`` of ``plan`` into ``path`` (fsynced) with ``stage`` -> {frames, seconds, report}.

    ``stage`` is an :class:`~vsr_pipeline.enhancer.Enhancer` built from ``config.stage``;
    it is reset first. ``progress(done)`` is called after every frame written.
    """
    import torch

    from vsr_pipeline.io.transcode import transcode
    from vsr_pipeline.io.windows import windows

    t0 = time.perf_counter()
    seg = plan.segments[idx]
    stage.reset()
    in_w, in_h = info.display_size
    out_h, out_w = stage.output_size(in_h, in_w)
    tb = info.time_base
    start = float(seg.from_pts * tb) if seg.read_from else None
    shift = int(round(start / tb)) if start else 0  # what the reader subtracts from every timestamp
    duration = float(seg.to_pts * tb) - (start or 0.0) if seg.to_pts is not None else None
    cuts = set(plan.starts)
    batch_size = config.runner.batch
    written = 0

    def globalise(frames: Iterable) -> Iterator:
        for f in frames:
            f.index += seg.read_from
            f.pts += shift
            yield f

    def run(batch: list) -> Iterator:
        x = torch.stack([w.frames for w in batch])  # (B, T, C, H, W)
        idx_ = [w.centre.index for w in batch]
        scenes = [bisect.bisect_right(plan.starts, i) - 1 for i in idx_]
        y = stage.process(x, idx_, scenes)  # (B, C, oH, oW)
        for win, out in zip(batch, y):
            yield win.centre, out

    def transform(frames: Iterable) -> Iterator:
        nonlocal written
        batch: list = []
        wins = windows(globalise(frames), size=stage.frames, edge=config.edge, is_cut=lambda p, c: c.index in cuts)
        for win in wins:
            i = win.centre.index
            if not seg.first <= i < seg.end:
                continue
            batch.append(win)
            if (i + 1) % batch_size == 0 or i == seg.end - 1:
                for pair in run(batch):
                    written += 1
                    if idx == 1 and written == (seg.end - seg.first) // 2:
                        fault("segment")
                    if progress is not None:
                        progress(written)
                    yield pair
                batch = []

    encode = replace(config.encode, copy_audio=False, copy_subtitles=False)  # muxed once, by the join
    transcode(src, path, info, (out_w, out_h), transform, encode=encode, replace=True, start=start,
              duration=duration, on_error=config.on_error, accept_size=stage.check_frame_size)
    if written != seg.end - seg.first:
        path.unlink(missing_ok=True)
        raise DecodeError(
            f"Input file {str(src)!r} decoded {written} frames in frames {seg.first}-{seg.end - 1}, not "
            f"{seg.end - seg.first} as when it was planned; it may have changed or be damaged."
        )
    fsync_file(path)
    return {"frames": written, "seconds": time.perf_counter() - t0, "report": stage.report()}


def join_segments(src: Path, info: VideoInfo, config: EnhanceConfig, files: list[Path], dst: Path, size: tuple[int, int],
                  *, replace: bool, expected: int | None = None, before_publish: Callable[[], None] | None = None) -> int:
    """Join the encoded segment ``files`` into ``dst`` without re-encoding, with ``src``'s audio and subtitles.

    ``size`` is the (width, height) of the output frames. The file is written beside
    ``dst``, fsynced and published atomically (``replace``: may replace an existing
    file) — only when it holds ``expected`` frames (when given) and ``before_publish()``
    (when given) has not raised; otherwise nothing appears at ``dst``. Returns the number
    of video frames joined.
    """
    import av

    from vsr_pipeline.io.encoding import plan_output
    from vsr_pipeline.io.files import atomic_output
    from vsr_pipeline.io.probe import open_input

    plan = plan_output(dst, info, size, config.encode)
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
                    if frames == half:
                        fault("join")
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
    import av

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


def fsync_file(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_path(work: Path, idx: int, ext: str) -> Path:
    """Where segment ``idx`` of a file is encoded in its work folder."""
    return work / f"seg-{idx:05d}{ext}"


def merge_reports(reports: list[dict | None]) -> dict | None:
    """One adaptation report from the segments' reports (records in frame order, totals recomputed)."""
    reports = [r for r in reports if r]
    if not reports:
        return None
    from vsr_pipeline.adapt.report import AdaptReport, FrameRecord

    nan = float("nan")
    records = [
        FrameRecord(**{k: (nan if v is None and k.startswith("loss") else v) for k, v in f.items()})
        for r in reports for f in r["frames"]
    ]
    head = reports[0]
    merged = AdaptReport(head["method"], head["degradation"], head["scale"], sorted(records, key=lambda f: f.index))
    return merged.to_dict()
