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
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from vsr_pipeline.batch.faults import fault
from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.errors import DecodeError
from vsr_pipeline.io.files import fsync_file
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.windows import RADIUS

log = logging.getLogger(__name__)

CONTEXT = RADIUS  # frames either side of a window's centre that a segment reads beyond its own


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
    from vsr_pipeline.io.scenes import SceneConfig, SceneDetector
    from vsr_pipeline.io.source import open_source

    detector = SceneDetector(SceneConfig(threshold=config.scene_threshold), fps=float(info.fps or 25))
    pts: list[int] = []
    starts = [0]
    prev = None
    for frame in open_source(src, info, on_error=config.on_error):
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
    from vsr_pipeline.io.transcode import transcode
    from vsr_pipeline.io.windows import windows
    from vsr_pipeline.pipeline import run_windows

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
        scenes = [bisect.bisect_right(plan.starts, w.centre.index) - 1 for w in batch]  # the whole file's numbering
        return run_windows(stage, batch, scenes)

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
    """Join the encoded segment ``files`` into ``dst`` (see :func:`vsr_pipeline.io.join.join_video`) -> frames joined.

    ``size`` is the (width, height) of the output frames; nothing appears at ``dst``
    unless it holds ``expected`` frames (when given) and ``before_publish()`` did not raise.
    """
    from vsr_pipeline.io.join import join_video

    return join_video(src, info, config.encode, files, dst, size, replace=replace, expected=expected,
                      before_publish=before_publish, at_half=lambda: fault("join"))


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
    scenes = {int(k): v for r in reports for k, v in (r.get("scenes") or {}).items()}
    merged = AdaptReport(head["method"], head["degradation"], head["scale"], sorted(records, key=lambda f: f.index), scenes)
    return merged.to_dict()
