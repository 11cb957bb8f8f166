"""Wire the stages: reader -> windows -> model runner -> writer, with progress and a report.

Decoding and encoding run in their own threads (the reader's and the writer's queues), so
that I/O overlaps the network; memory stays bounded by the window and the queues.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.errors import ConfigError, InputError, OutputError
from vsr_pipeline.io.probe import VideoInfo, probe
from vsr_pipeline.io.reader import VideoReader
from vsr_pipeline.io.scenes import SceneConfig, SceneDetector
from vsr_pipeline.io.windows import windows
from vsr_pipeline.io.writer import EncodeOptions, VideoWriter
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.runner import Runner, RunnerConfig, output_size

log = logging.getLogger(__name__)

DEFAULT_MODEL = "vsrnet-x4"  # the shipped network; bicubic is the baseline

Progress = Callable[[int, int | None], None]  # (frames done, frames expected or None)


@dataclass(frozen=True)
class EnhanceConfig:
    """Everything `vsrpipe enhance` can be told; the CLI maps its options onto this."""

    scale: float = 4  # output scale (may differ from the model's native scale)
    model: str = DEFAULT_MODEL  # registered model name or a weights file path
    start: float | None = None  # seconds: process a section starting here
    duration: float | None = None  # seconds: length of the section
    on_error: str = "stop"  # damaged input: "stop" (fail) or "skip" (drop damaged frames, warn)
    edge: str = "replicate"  # window edges: "replicate" or "reflect"
    overwrite: bool = False  # replace an existing output file
    scene_threshold: float = 27.0  # content-detector score that marks a scene cut; 0 = off
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # device, tiling, batching
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # test-time adaptation (method "none": off)
    report: Path | None = None  # write the run report (adaptation records included) as JSON here
    encode: EncodeOptions = field(default_factory=EncodeOptions)  # writer backend and codec


@dataclass(frozen=True)
class EnhanceResult:
    """The run report."""

    output: Path  # file written
    frames: int  # frames written (= frames read)
    lost_frames: int  # frames lost to input damage (--on-error skip)
    seconds: float  # wall time of the whole run
    input_size: tuple[int, int]  # (width, height) of the input frames, rotation applied
    output_size: tuple[int, int]  # (width, height) of the output frames
    model: str  # model used
    device: str  # device used
    adapt: dict | None = None  # adaptation report (totals and per-frame records), None without --adapt

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse an output that is the input, exists without ``overwrite``, or cannot be written."""
    if not src.exists():
        raise InputError(f"Input file {str(src)!r} does not exist.")
    if dst.exists() and (dst.resolve() == src.resolve() or os.path.samefile(dst, src)):
        raise OutputError(f"Output {str(dst)!r} is the input file; choose another output path.")
    if dst.resolve() == src.resolve():
        raise OutputError(f"Output {str(dst)!r} is the input file; choose another output path.")
    if dst.is_dir():
        raise OutputError(f"Output {str(dst)!r} is a folder; give a file name such as out.mp4.")
    if dst.exists() and not overwrite:
        raise OutputError(f"Output {str(dst)!r} already exists; pass --overwrite to replace it.")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"Output folder {str(parent)!r} does not exist.")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"Output folder {str(parent)!r} is not writable.")


def run_enhance(src: Path | str, dst: Path | str, config: EnhanceConfig, progress: Progress | None = None) -> EnhanceResult:
    """Upscale ``src`` into ``dst`` per ``config``; see :func:`vsr_pipeline.enhance`."""
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if config.scale <= 0:
        raise ConfigError(f"--scale must be positive, got {config.scale:g}.")
    if config.on_error not in ("stop", "skip"):
        raise ConfigError(f"--on-error must be 'stop' or 'skip', got {config.on_error!r}.")
    if config.start is not None and config.start < 0 or config.duration is not None and config.duration <= 0:
        raise ConfigError("--start must be ≥ 0 and --duration > 0.")
    check_paths(src, dst, config.overwrite)
    if config.report is not None and Path(config.report).resolve() in (src.resolve(), dst.resolve()):
        raise OutputError(f"--report {str(config.report)!r} would overwrite a video; choose another path.")
    info = probe(src)
    if config.start and info.duration is not None and config.start >= info.duration:
        raise InputError(f"--start {config.start:g} s is past the end of {str(src)!r} ({info.duration:.2f} s).")

    model = load_model(config.model, scale=config.scale)
    runner = Runner(model, config.scale, config.runner)
    adapter = None
    if config.adapt.method != "none":
        from vsr_pipeline.adapt import Adapter

        adapter = Adapter(model, config.scale, config.adapt, device=runner.device, degradation_for_scene=_kernel_hook(config))
    in_w, in_h = info.display_size
    out_h, out_w = output_size(in_h, in_w, config.scale)

    reader = VideoReader(
        src,
        start=config.start,
        duration=config.duration,
        on_error=config.on_error,
        side_streams=(),  # filled below once the writer has decided which streams it keeps
        info=info,
    )
    writer = VideoWriter(dst, info, (out_w, out_h), config.encode)
    reader.side_streams = writer.plan.side_streams
    expected = _expected_frames(info, config)
    section = (config.start or 0.0, config.duration)

    writer.open(section=section)
    sink = _WriterThread(writer)
    done = 0
    try:
        batch: list = []

        def flush() -> None:
            nonlocal done
            x = torch.stack([w.frames for w in batch])  # (B, T, C, H, W)
            if adapter is None:
                y = runner(x)  # (B, C, sH, sW)
            else:
                y = adapter.process(x, [w.centre.index for w in batch], [w.scene for w in batch])
            for win, out in zip(batch, y):
                f = win.centre
                sink.put(out, f.pts, f.time_base, f.side_packets)
                done += 1
                if progress is not None:
                    progress(done, expected)
            batch.clear()

        cuts = SceneDetector(SceneConfig(threshold=config.scene_threshold), fps=float(info.fps or 25))
        for win in windows(reader, size=5, edge=config.edge, is_cut=cuts):
            batch.append(win)
            if len(batch) >= max(1, config.runner.batch):
                flush()
        if batch:
            flush()
        sink.finish(reader.trailing_packets)
    except BaseException:
        sink.abort()
        raise
    if reader.stats.lost:
        log.warning("%d frame(s) of %s were lost to damage and skipped", reader.stats.lost, src)
    result = EnhanceResult(
        output=dst,
        frames=done,
        lost_frames=reader.stats.lost,
        seconds=time.perf_counter() - t0,
        input_size=(in_w, in_h),
        output_size=(out_w, out_h),
        model=model.info.name,
        device=str(runner.device),
        adapt=adapter.report.to_dict() if adapter is not None else None,
    )
    if config.report is not None:
        write_report(config.report, result)
    return result


def write_report(path: Path, result: EnhanceResult) -> None:
    """Write the run report as JSON (atomically: a temporary file renamed into place)."""
    import json

    data = {
        "output": str(result.output),
        "frames": result.frames,
        "lost_frames": result.lost_frames,
        "seconds": result.seconds,
        "fps": result.fps,
        "input_size": result.input_size,
        "output_size": result.output_size,
        "model": result.model,
        "device": result.device,
        "adapt": result.adapt,
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _kernel_hook(config: EnhanceConfig):
    """The per-scene kernel estimator for ``--degradation estimate`` (``config.adapt.kernel_method``), else None."""
    if config.adapt.degradation.split(",")[0].strip() != "estimate":
        return None
    from vsr_pipeline.adapt.kernelgan import KernelEstimator, KernelGANConfig
    from vsr_pipeline.adapt.spectral_kernel import SpectralConfig

    method = SpectralConfig() if config.adapt.kernel_method == "spectral" else KernelGANConfig.fast()
    return KernelEstimator(config.scale, method).degradation_for_scene


def _expected_frames(info: VideoInfo, config: EnhanceConfig) -> int | None:
    if config.start is None and config.duration is None:
        if info.frame_count:
            return info.frame_count
    if info.fps and info.duration:
        end = info.duration if config.duration is None else min(info.duration, (config.start or 0) + config.duration)
        return max(0, round((end - (config.start or 0)) * float(info.fps)))
    return None


_STOP = object()


class _WriterThread:
    """Encode in a background thread so that encoding overlaps the network."""

    def __init__(self, writer: VideoWriter, depth: int = 4) -> None:
        self.writer = writer
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="vsrpipe-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _STOP:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                rgb, pts, tb, side = item
                self.writer.write(rgb, pts, tb, side)
            except BaseException as exc:
                self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, rgb: torch.Tensor, pts: int, time_base, side_packets: list) -> None:
        """Queue one frame (3, H, W) for encoding; re-raises an earlier encoder failure."""
        self._raise()
        self.q.put((rgb.detach().to("cpu"), pts, time_base, side_packets))

    def finish(self, trailing_packets: list) -> None:
        """Wait for the queue to drain, then close the writer (renames into place)."""
        self.q.put(_STOP)
        self.thread.join()
        self._raise()
        self.writer.close(trailing_packets)

    def abort(self) -> None:
        """Stop and remove the temporary output."""
        self.error = self.error or RuntimeError("aborted")
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.q.put(_STOP)
        self.thread.join(timeout=10)
        self.writer.abort()
