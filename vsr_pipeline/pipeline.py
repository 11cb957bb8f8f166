"""The file → file driver behind ``vsrpipe enhance``: source → windows → stage → sink.

Sources and sinks are video files or image sequences (:mod:`vsr_pipeline.io.source`).

The stage (:class:`~vsr_pipeline.enhancer.Enhancer`) owns the model and adaptation; this
driver owns the files, the windows and their scene cuts, batching, and the run report.
Decoding and encoding run in their own threads (see :mod:`vsr_pipeline.io.transcode`),
so I/O overlaps the network; memory stays bounded by the window and the queues.

A sequence output may be staged resumably (``staging``): a rerun reads the input again
from its first frame, feeding the scene detector and the windows exactly as before, but
runs the stage only from the frame where the staged frames end (with ``--adapt``: from
the start of that frame's scene, where every method restarts its state), so the frames
it adds are those an uninterrupted run gives.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import torch

from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.enhancer import Enhancer
from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.io.files import check_report_path, write_bytes_atomic
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.reader import Frame
from vsr_pipeline.io.scenes import SceneConfig, SceneDetector
from vsr_pipeline.io.sequence_sink import Staging, staged_frames
from vsr_pipeline.io.source import check_output, open_source, probe_source
from vsr_pipeline.io.transcode import Progress, expected_frames, transcode
from vsr_pipeline.io.windows import windows

__all__ = ["EnhanceResult", "Progress", "run_enhance", "run_windows", "write_report"]


@dataclass(frozen=True)
class EnhanceResult:
    """The run report."""

    output: Path  # file (or numbered image pattern) written
    frames: int  # frames written (= frames read)
    lost_frames: int  # frames lost to input damage (--on-error skip)
    seconds: float  # wall time of the whole run
    input_size: tuple[int, int]  # (width, height) of the input frames, rotation applied
    output_size: tuple[int, int]  # (width, height) of the output frames
    model: str  # model used
    device: str  # device used
    adapt: dict | None = None  # adaptation report (totals and per-frame records), None without --adapt
    runtime: dict | None = None  # the runtime of the output passes: name, what --runtime asked, auto's trial
    model_info: dict | None = None  # what the model declares (scale, frames, supports_half, tiling, …) and the run's half/tile

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        """The report as plain JSON-serialisable data."""
        return {
            "output": str(self.output), "frames": self.frames, "lost_frames": self.lost_frames,
            "seconds": self.seconds, "fps": self.fps, "input_size": self.input_size,
            "output_size": self.output_size, "model": self.model, "device": self.device, "adapt": self.adapt,
            "runtime": self.runtime, "model_info": self.model_info,
        }


def run_enhance(
    src: Path | str, dst: Path | str, config: EnhanceConfig, progress: Progress | None = None, *, stage: Enhancer | None = None,
    staging: Staging | None = None,
) -> EnhanceResult:
    """Upscale ``src`` into ``dst`` per ``config``; see :func:`vsr_pipeline.enhance`.

    ``stage``: an :class:`Enhancer` built earlier from ``config.stage`` (to upscale many
    files with one loaded model); it is reset for this clip. Without it one is built here.
    ``staging``: stage the frames of a sequence output in ``staging.folder`` (its ``done``
    is counted here) and keep those an interrupted run with the same settings left there.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    check_output(src, dst, config.overwrite)
    if config.report is not None:
        check_report_path(config.report, overwrite=config.overwrite, used=(src, dst, config.model))
    info = probe_source(src, dst, fps=config.fps)
    if config.start and info.duration is not None and config.start >= info.duration:
        raise InputError(f"--start {config.start:g} s is past the end of {str(src)!r} ({info.duration:.2f} s).")
    compute_from = 0  # windows centred before this frame are not run: their frames are staged already
    if staging is not None:
        if config.start is not None or config.duration is not None:
            raise ConfigError("--resume works on whole files; drop --start and --duration.")
        first = info.sequence.first if info.sequence is not None else 1
        staging = replace(staging, done=staged_frames(staging.folder, dst, first))
        compute_from = staging.done
        if staging.done and config.adapt.method != "none":
            compute_from = scene_start(src, info, config.scene_threshold, staging.done)
    if progress is not None:
        progress(0, expected_frames(info, config.start, config.duration))  # the total, before the model loads
    if stage is None:
        stage = Enhancer(config.stage)
    elif stage.config != config.stage:
        raise ConfigError("The stage was built for other settings than this run's; build one from config.stage.")
    else:
        stage.reset()
    in_w, in_h = info.display_size
    out_h, out_w = stage.output_size(in_h, in_w)
    cuts = SceneDetector(SceneConfig(threshold=config.scene_threshold), fps=float(info.fps or 25))
    staged = torch.zeros(3, 1, 1).expand(3, out_h, out_w)  # what is yielded for a frame staged already (not written)

    def run(batch: list) -> Iterator[tuple[Frame, torch.Tensor]]:
        if batch[-1].centre.index < compute_from:
            return ((w.centre, staged) for w in batch)
        return run_windows(stage, batch)

    def transform(frames: Iterable[Frame]) -> Iterator[tuple[Frame, torch.Tensor]]:
        batch = []
        for win in windows(frames, size=stage.frames, edge=config.edge, is_cut=cuts):
            batch.append(win)
            if len(batch) >= config.runner.batch:
                yield from run(batch)
                batch = []
        if batch:
            yield from run(batch)

    facts = stage.model_facts()  # before anything is published
    stats = transcode(
        src, dst, info, (out_w, out_h), transform, encode=config.encode, replace=config.overwrite,
        start=config.start, duration=config.duration, on_error=config.on_error, progress=progress,
        accept_size=stage.check_frame_size, staging=staging,
    )
    result = EnhanceResult(
        output=dst,
        frames=stats.frames,
        lost_frames=stats.lost,
        seconds=time.perf_counter() - t0,
        input_size=(in_w, in_h),
        output_size=(out_w, out_h),
        model=stage.name,
        device=str(stage.device),
        adapt=stage.report(),
        runtime=stage.runtime(),
        model_info=facts,
    )
    if config.report is not None:
        write_report(config.report, result, replace=config.overwrite)
    return result


def run_windows(stage: Enhancer, batch: list, scenes: list[int] | None = None) -> Iterator[tuple[Frame, torch.Tensor]]:
    """Run one batch of windows through ``stage`` -> (centre frame, output (C, oH, oW)) pairs, in order.

    ``scenes``: each window's scene number (default: the windows' own, counted from the
    first frame read); batch segments give the whole file's. Every driver calls the stage here.
    """
    x = torch.stack([w.frames for w in batch])  # (B, T, C, H, W)
    scenes = [w.scene for w in batch] if scenes is None else scenes
    y = stage.process(x, [w.centre.index for w in batch], scenes)  # (B, C, oH, oW)
    for win, out in zip(batch, y):
        yield win.centre, out


def scene_start(src: Path | str, info: VideoInfo, threshold: float, frame: int) -> int:
    """The first frame of the scene holding frame ``frame`` of ``src``, as :func:`run_enhance`'s detector cuts it.

    The detector is fed the same frames in the same order as in a whole run, up to ``frame``.
    This decodes the staged part once more before the run decodes it again to find its
    place: a resumed adaptive sequence pays about twice the decoding of what it keeps.
    """
    detector = SceneDetector(SceneConfig(threshold=threshold), fps=float(info.fps or 25))
    start, prev = 0, None
    source = open_source(src, info)
    try:
        for f in source:
            if f.index > frame:
                break
            if prev is not None and detector(prev, f):
                start = f.index
            prev = f
    finally:
        source.close()
    return start


def write_report(path: Path | str, result: EnhanceResult, *, replace: bool = True) -> None:
    """Write the run report as JSON (atomically: a temporary file renamed into place; ``replace``: may replace a file)."""
    write_bytes_atomic(path, json.dumps(result.to_dict(), indent=2).encode(), replace=replace)
