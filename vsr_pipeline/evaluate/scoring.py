"""Score a result against its reference frame by frame (``vsrpipe evaluate``).

:func:`evaluate_videos` streams both clips side by side — memory holds one frame of each —
matches frames by timestamp and scores every pair with the metrics of
:mod:`vsr_pipeline.metrics`: PSNR and SSIM on the BT.601 Y channel with a border crop, and
the perceptual distances ST-LPIPS and LPIPS (two different metrics, labelled apart) on the
cropped RGB frame. The :class:`EvaluationReport` renders as a table (:func:`format_table`),
JSON (:func:`write_json`) and CSV (:func:`write_csv`); the per-frame PSNR plot is in
:mod:`vsr_pipeline.evaluate.figures`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.io.files import write_bytes_atomic
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.source import is_sequence_input, open_source, probe_source
from vsr_pipeline.metrics import PerceptualMetric, load_lpips, load_stlpips, psnr, ssim

__all__ = [
    "EvaluationReport",
    "FrameScore",
    "evaluate_videos",
    "format_table",
    "write_json",
    "write_csv",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (frames done, frames expected or None)

_SSIM_MIN = 11  # metrics.ssim's window: frames must be at least this big after the crop


@dataclass(frozen=True)
class FrameScore:
    """The scores of one matched frame pair."""

    frame: int  # index of the frame in OUT (from 0)
    reference_frame: int  # index of the matched frame in the reference (from 0, or from --reference-start)
    time: float  # presentation time in seconds, OUT's clock
    psnr: float  # dB on Y, border cropped; inf where the frames are identical
    ssim: float  # on Y, border cropped; 1 where identical
    st_lpips: float | None = None  # ST-LPIPS distance (lower is better); None when not computed
    lpips: float | None = None  # LPIPS distance (lower is better); None when not computed


# FrameScore field -> column label; perceptual labels come from the loaded metric.
_BASE_COLUMNS = {"psnr": "PSNR (dB)", "ssim": "SSIM"}


@dataclass(frozen=True)
class EvaluationReport:
    """Per-frame scores of OUT against the reference, their means, and how frames were matched."""

    output: Path  # the clip evaluated
    reference: Path  # the reference clip
    size: tuple[int, int]  # (width, height) of both
    crop: int  # border pixels removed before measuring
    frames: tuple[FrameScore, ...]  # one row per matched frame pair, in OUT's order
    output_frames: int  # frames read from OUT
    reference_frames: int  # frames read from the reference (its section, with a reference start)
    reference_start: float | None = None  # seconds into the reference where OUT begins
    perceptual: dict[str, str] = field(default_factory=dict)  # computed: field ("st_lpips", "lpips") -> label
    unavailable: dict[str, str] = field(default_factory=dict)  # not computed: label -> reason
    seconds: float = 0.0  # wall time of the evaluation

    @property
    def matched(self) -> int:
        """Number of frame pairs matched by timestamp (= len(frames))."""
        return len(self.frames)

    @property
    def columns(self) -> dict[str, str]:
        """The measured fields in table order, mapped to their labels."""
        return {**_BASE_COLUMNS, **self.perceptual}

    @property
    def mean(self) -> dict[str, float]:
        """Mean of each measured field over the matched frames (PSNR: mean of per-frame dB)."""
        if not self.frames:
            return {}
        return {k: float(np.mean([getattr(r, k) for r in self.frames])) for k in self.columns}

    def to_dict(self) -> dict:
        """A JSON-ready dict; infinite PSNR (identical frames) becomes None."""
        return {
            "output": str(self.output),
            "reference": str(self.reference),
            "reference_start": self.reference_start,
            "size": list(self.size),
            "crop": self.crop,
            "channel": "Y (BT.601) for PSNR/SSIM; RGB for perceptual metrics",
            "output_frames": self.output_frames,
            "reference_frames": self.reference_frames,
            "matched_frames": self.matched,
            "metrics": self.columns,
            "unavailable": dict(self.unavailable),
            "frames": [
                {"frame": r.frame, "reference_frame": r.reference_frame, "time": r.time,
                 **{k: _finite(getattr(r, k)) for k in self.columns}}
                for r in self.frames
            ],
            "mean": {k: _finite(v) for k, v in self.mean.items()},
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented, strict JSON (no NaN/Infinity)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_csv(self) -> str:
        """One row per frame, then a ``mean`` row; infinite PSNR is written ``inf``."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        keys = list(self.columns)
        w.writerow(["frame", "reference_frame", "time", *keys])
        for r in self.frames:
            w.writerow([r.frame, r.reference_frame, f"{r.time:.6f}", *(_num(getattr(r, k)) for k in keys)])
        mean = self.mean
        w.writerow(["mean", "", "", *(_num(mean[k]) for k in keys)])
        return buf.getvalue()


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _num(x: float) -> str:
    return "inf" if x == math.inf else f"{x:.6g}"


def _fps(info: VideoInfo) -> float | None:
    return float(info.fps) if info.fps else None


def _probe_pair(out: Path, reference: Path, fps: float | None) -> tuple[VideoInfo, VideoInfo]:
    """Describe both clips; an image sequence runs at ``fps``, else at the other clip's rate (a video's own).

    ``fps`` with two videos is refused by :func:`probe_source`, naming the first.
    """
    seq_o, seq_r = is_sequence_input(out), is_sequence_input(reference)
    if fps is not None and not (seq_o or seq_r):
        probe_source(out, fps=fps)  # raises: a video has its own rate
    info_o = None if seq_o else probe_source(out)
    info_r = None if seq_r else probe_source(reference)
    video = info_r or info_o
    rate = fps if fps is not None or video is None else _fps(video)
    return info_o or probe_source(out, fps=rate), info_r or probe_source(reference, fps=rate)


def evaluate_videos(
    out: Path | str,
    reference: Path | str,
    *,
    crop: int = 4,
    perceptual: bool = True,
    lpips_weights: Path | str | None = None,
    progress: Progress | None = None,
    reference_start: float | None = None,
    device: str | torch.device = "cpu",
    fps: float | None = None,
) -> EvaluationReport:
    """Score every frame of ``out`` against the frame of ``reference`` with the same timestamp.

    Args:
        out: the clip to judge (e.g. an upscaled result): a video file or an image
            sequence (a folder, ``frames/%06d.png`` or ``frames/*.tif``).
        reference: the ground truth, same frame size; a video or an image sequence.
        crop: border pixels removed on every side before measuring (SR papers use the scale).
        perceptual: also compute ST-LPIPS and, when its weights can be found, LPIPS.
        lpips_weights: torchvision AlexNet weights for LPIPS; None looks in torch's hub cache.
        progress: called as ``progress(matched, expected)`` after each matched pair.
        reference_start: ``out`` is the section of ``reference`` that begins here (seconds),
            as made by ``degrade``/``enhance --start``; the reference is then read from this
            time on, its timestamps shifted to 0, and only as far as ``out`` lasts.
        device: where the perceptual networks run.
        fps: the frame rate of an image sequence (``--fps``); None: the other clip's
            rate when that is a video, else 25 (two sequences then match frame by frame).

    Frames match when their timestamps differ by at most half a frame of the reference.

    Returns:
        An :class:`EvaluationReport`. Raises ``InputError`` when a file is unreadable, the
        sizes differ, the frame counts differ, or no frame matches; ``ConfigError`` for a
        crop that leaves too little of the frame.
    """
    t0 = time.perf_counter()
    out, reference = Path(out), Path(reference)
    crop = int(crop)
    if crop < 0:
        raise ConfigError(f"--crop must be >= 0, got {crop}.")
    if reference_start is not None and not (0 <= reference_start < float("inf")):
        raise ConfigError(f"--reference-start must be a finite number >= 0, got {reference_start:g}.")
    info_o, info_r = _probe_pair(out, reference, fps)
    size = info_o.display_size
    if size != info_r.display_size:
        (wo, ho), (wr, hr) = size, info_r.display_size
        raise InputError(
            f"{str(out)!r} is {wo}x{ho} but the reference {str(reference)!r} is {wr}x{hr}; "
            "evaluate needs frames of the same size."
        )
    w, h = size
    if min(w, h) - 2 * crop < _SSIM_MIN:
        raise ConfigError(
            f"--crop {crop} leaves {w - 2 * crop}x{h - 2 * crop} of the {w}x{h} frames; "
            f"SSIM needs at least {_SSIM_MIN}x{_SSIM_MIN}, so use a smaller crop."
        )

    metrics: dict[str, PerceptualMetric] = {}
    unavailable: dict[str, str] = {}
    if perceptual:
        for key, metric in (("st_lpips", load_stlpips()), ("lpips", load_lpips(weights_path=lpips_weights))):
            if metric.available:
                metrics[key] = metric.to(device)
            else:
                unavailable[metric.name] = metric.reason
                log.info("%s: unavailable (%s)", metric.name, metric.reason)

    fps = _fps(info_r) or _fps(info_o) or 25.0
    tol = 0.5 / fps
    reader_o = open_source(out, info_o)
    reader_r = open_source(reference, info_r, start=reference_start)
    it_o, it_r = iter(reader_o), iter(reader_r)
    rows: list[FrameScore] = []
    n_o = n_r = 0
    first_o = first_r = None
    try:
        fo, fr = next(it_o, None), next(it_r, None)
        if fo is not None:
            first_o = fo.time
        if fr is not None:
            first_r = fr.time
        while fo is not None and fr is not None:
            d = fo.time - fr.time
            if abs(d) <= tol + 1e-9:
                rows.append(_score(fo, fr, crop, metrics, device))
                if progress is not None:
                    progress(len(rows), info_o.frame_count)
                fo, fr, n_o, n_r = next(it_o, None), next(it_r, None), n_o + 1, n_r + 1
            elif d < 0:
                fo, n_o = next(it_o, None), n_o + 1
            else:
                fr, n_r = next(it_r, None), n_r + 1
        # Count what is left: the frames OUT lacks or holds beyond the other's end. A
        # reference section is as long as OUT, so its remainder is not part of it.
        while fo is not None:
            fo, n_o = next(it_o, None), n_o + 1
        if reference_start is None:
            while fr is not None:
                fr, n_r = next(it_r, None), n_r + 1
    finally:
        it_o.close()
        it_r.close()

    section = f" from {reference_start:g} s on" if reference_start is not None else ""
    if n_o != n_r:
        raise InputError(
            f"{str(out)!r} has {n_o} frames but the reference {str(reference)!r}{section} has {n_r}; "
            "evaluate needs the same clip at the same frame rate"
            + ("." if reference_start is not None else " (pass --reference-start when OUT is a section of it).")
        )
    if not rows:
        raise InputError(
            f"No frame of {str(out)!r} matches a frame of the reference {str(reference)!r}{section} by timestamp "
            f"(within half a frame, {tol * 1000:.1f} ms): the output starts at {first_o or 0:.3f} s, the reference at "
            f"{first_r or 0:.3f} s."
        )
    if len(rows) < n_o:
        log.warning(
            "only %d of %d frames matched by timestamp (within %.1f ms); the others are not scored",
            len(rows), n_o, tol * 1000,
        )
    return EvaluationReport(
        output=out,
        reference=reference,
        size=size,
        crop=crop,
        frames=tuple(rows),
        output_frames=n_o,
        reference_frames=n_r,
        reference_start=reference_start,
        perceptual={k: m.name for k, m in metrics.items()},
        unavailable=unavailable,
        seconds=time.perf_counter() - t0,
    )


def _score(fo, fr, crop: int, metrics: dict[str, PerceptualMetric], device) -> FrameScore:
    a, b = fo.rgb, fr.rgb  # (3, H, W) float32 in [0, 1]
    values = {"psnr": float(psnr(a, b, crop=crop)), "ssim": float(ssim(a, b, crop=crop))}
    if metrics:
        ca, cb = (x[:, crop:-crop, crop:-crop] if crop else x for x in (a, b))
        for key, metric in metrics.items():
            values[key] = float(metric(ca.to(device), cb.to(device)))
    return FrameScore(frame=fo.index, reference_frame=fr.index, time=fo.time, **values)


def format_table(report: EvaluationReport, *, rows: bool = True) -> str:
    """The report as a fixed-width text table: one line per frame (unless ``rows`` is False),
    the mean, how many frames matched, and a line per unavailable metric."""
    keys = list(report.columns)
    heads = ["frame", "time (s)", *report.columns.values()]
    fmt = {"psnr": "{:.2f}", "ssim": "{:.4f}"}

    def cell(key: str, v: float) -> str:
        return "inf" if v == math.inf else fmt.get(key, "{:.4f}").format(v)

    lines = [[str(r.frame), f"{r.time:.3f}", *(cell(k, getattr(r, k)) for k in keys)] for r in report.frames] if rows else []
    mean = report.mean
    lines.append(["mean", "", *(cell(k, mean[k]) for k in keys)])
    widths = [max(len(hd), *(len(ln[i]) for ln in lines)) for i, hd in enumerate(heads)]
    out = ["  ".join(hd.rjust(wd) for hd, wd in zip(heads, widths))]
    out += ["  ".join(c.rjust(wd) for c, wd in zip(ln, widths)) for ln in lines[:-1]]
    if rows:
        out.append("-" * len(out[0]))
    out.append("  ".join(c.rjust(wd) for c, wd in zip(lines[-1], widths)))
    w, h = report.size
    out.append(
        f"{report.matched} of {report.output_frames} frames matched by timestamp; {w}x{h}, PSNR/SSIM on Y (BT.601), "
        f"border crop {report.crop} px"
    )
    for label, reason in report.unavailable.items():
        out.append(f"{label.split(' (')[0]}: unavailable ({reason})")
    return "\n".join(out)


def write_json(report: EvaluationReport, path: Path | str) -> Path:
    """Write :meth:`EvaluationReport.to_json` to ``path`` (atomically)."""
    return write_bytes_atomic(path, report.to_json().encode())


def write_csv(report: EvaluationReport, path: Path | str) -> Path:
    """Write :meth:`EvaluationReport.to_csv` to ``path`` (atomically)."""
    return write_bytes_atomic(path, report.to_csv().encode())
