"""The one read → transform → write loop behind every file → file command (``enhance``, ``degrade``).

::

    stats = transcode(src, dst, info, (out_w, out_h), transform, encode=EncodeOptions(), ...)

``transform`` receives the stream of decoded :class:`~vsr_pipeline.io.reader.Frame`\\ s and
yields ``(frame, rgb)`` pairs: each input frame with its output (3, H', W') in [0, 1], in
order, exactly one per input frame. The loop gives every output the input frame's
timestamp and side-stream packets, encodes in a background thread (so encoding overlaps
the transform), reports progress, and publishes the file only when everything succeeded;
on any failure or interruption the temporary file is removed.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.errors import InputError
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.reader import Frame
from vsr_pipeline.io.sequence_sink import Staging
from vsr_pipeline.io.source import Sink, open_sink, open_source
from vsr_pipeline.limits import check_encoder_size

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]  # (frames done, frames expected or None)
Transform = Callable[[Iterable[Frame]], Iterator[tuple[Frame, torch.Tensor]]]


@dataclass(frozen=True)
class TranscodeStats:
    """What the loop wrote."""

    frames: int  # frames written (= frames read, less those lost to damage)
    lost: int  # frames lost to input damage (on_error="skip")
    codec: str  # the encoder used
    pix_fmt: str  # the pixel format written


def expected_frames(info: VideoInfo, start: float | None, duration: float | None) -> int | None:
    """Frames a run over ``info`` (or its section) is expected to produce, or None when unknown."""
    if start is None and duration is None and info.frame_count:
        return info.frame_count
    if info.fps and info.duration:
        end = info.duration if duration is None else min(info.duration, (start or 0) + duration)
        if duration is None:
            return max(0, round((end - (start or 0)) * float(info.fps)))
        # the reader keeps the frames with start ≤ t < end (1 µs tolerance) on the clip's frame grid
        fps, tol = float(info.fps), 1e-6 * float(info.fps)
        return max(0, math.ceil(end * fps - tol) - math.ceil((start or 0) * fps - tol))
    return None


def transcode(
    src: Path,
    dst: Path,
    info: VideoInfo,
    size: tuple[int, int],
    transform: Transform,
    *,
    encode: EncodeOptions = EncodeOptions(),
    replace: bool = False,
    start: float | None = None,
    duration: float | None = None,
    on_error: str = "stop",
    progress: Progress | None = None,
    accept_size: Callable[[int, int], None] | None = None,
    staging: Staging | None = None,
) -> TranscodeStats:
    """Decode ``src`` (or its section), ``transform`` the frames and encode them to ``dst`` at ``size`` (w, h).

    ``src`` and ``dst`` may be video files or image sequences (``info`` from
    :func:`~vsr_pipeline.io.source.probe_source` says which for ``src``; a numbered
    pattern such as ``out/%06d.png`` makes ``dst`` one), see :mod:`vsr_pipeline.io.source`.

    ``replace`` lets the publish replace a file at ``dst`` (``--overwrite``); without it a
    file that appears there during the run is kept and the run fails with OutputError.
    A size the encoder cannot take is refused before anything is decoded (OutputError, see
    :mod:`vsr_pipeline.limits`); then ``accept_size(width, height)``, when given, may refuse
    it for the caller's own reasons (raising a VsrError). ``staging`` makes a sequence
    output resumable (:class:`~vsr_pipeline.io.sequence_sink.Staging`): the transform
    still yields a pair for every frame, but those already staged are not written again.
    """
    reader = open_source(src, info, start=start, duration=duration, on_error=on_error)
    writer = open_sink(dst, info, size, encode, replace=replace, first_number=reader.first_number, staging=staging)
    check_encoder_size(writer.plan.codec, writer.plan.width, writer.plan.height)
    if accept_size is not None:
        accept_size(*size)
    reader.side_streams = writer.plan.side_streams  # the writer decides which side streams it keeps
    expected = expected_frames(info, start, duration)
    if progress is not None:
        progress(0, expected)  # the total is known before the first frame
    sink = _WriterThread(writer)
    done = 0
    frames = transform(reader)
    try:
        for frame, rgb in frames:
            if writer.tmp is None:
                # opened at the first frame: a section starts at its first frame's time, which
                # the ffmpeg backend needs to cut the side streams it takes from the source
                writer.open(section=reader.section)
            sink.put(rgb, frame.pts, frame.time_base, frame.side_packets)
            done += 1
            if progress is not None:
                progress(done, expected)
        if writer.tmp is None:  # the writer opens at the first frame: none came
            raise InputError(f"Input file {str(src)!r} gave no frames to write (in the section asked for, if any).")
        sink.finish(reader.trailing_packets)
    except BaseException:
        sink.abort()
        raise
    finally:
        if hasattr(frames, "close"):
            frames.close()  # stops the transform's generators (and with them the reader's decode thread)
        reader.close()
    if reader.stats.lost:
        log.warning("%d frame(s) of %s were lost to damage and skipped", reader.stats.lost, src)
    return TranscodeStats(frames=done, lost=reader.stats.lost, codec=writer.plan.codec, pix_fmt=writer.plan.pix_fmt)


_STOP = object()


class _WriterThread:
    """Encode in a background thread so that encoding overlaps the transform."""

    def __init__(self, writer: Sink, depth: int = 4) -> None:
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
        """Wait for the queue to drain, then close the writer (publishes the file)."""
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
