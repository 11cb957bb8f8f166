"""The two seams at the edges of every file driver: a **source** gives frames, a **sink** takes them.

::

    info = probe_source(src, fps=None)                # a video file, or an image sequence
    source = open_source(src, info, start=..., duration=..., on_error=...)
    sink = open_sink(dst, info, (w, h), EncodeOptions(), replace=False, first_number=source.first_number)

Sources: :class:`~vsr_pipeline.io.reader.VideoReader` (a file PyAV opens) and
:class:`~vsr_pipeline.io.sequence.SequenceReader` (a folder, ``frames/%06d.png`` or
``frames/*.tif``). Sinks: :class:`~vsr_pipeline.io.writer.VideoWriter` (a video file) and
:class:`~vsr_pipeline.io.sequence_sink.SequenceWriter` (``out/%06d.png``). Drivers ask
these functions for both and never open a container themselves; the sink takes the side
streams (audio, subtitles) as packets riding on the source's frames.

To add a source: a class with the :class:`Source` members, recognised in
:func:`probe_source` and :func:`open_source`. To add a sink: a class with the
:class:`~vsr_pipeline.io.sink.Sink` members, recognised in :func:`check_output` and :func:`open_sink`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.files import check_paths
from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.io.probe import VideoInfo, count_packets, probe
from vsr_pipeline.io.reader import Frame, ReadStats, VideoReader
from vsr_pipeline.io.sequence import IMAGE_FORMATS, SequenceReader, is_pattern, is_sequence_input, probe_sequence
from vsr_pipeline.io.sequence_sink import SequenceWriter, Staging, check_sequence_output, is_sequence_output
from vsr_pipeline.io.sink import Sink
from vsr_pipeline.io.writer import VideoWriter

__all__ = ["Sink", "Source", "check_file_output", "check_output", "is_sequence_input", "is_sequence_output", "open_sink", "open_source", "probe_source"]


class Source(Protocol):
    """Frames in order, each with its timestamp and the side-stream packets demuxed before it."""

    info: VideoInfo  # geometry, rate, colour facts, side streams (``info.audio``, ``info.subtitles``)
    stats: ReadStats  # frames read and lost, filled while iterating
    first_number: int  # the number of the first frame (an image sequence's own; 1 for a video)
    side_streams: tuple[int, ...]  # indices of the side streams whose packets ride along (set by the driver)
    trailing_packets: list  # side packets after the last frame, known when iteration ends

    @property
    def section(self) -> tuple[float, float | None]: ...  # (first frame's time, remaining duration) in source seconds

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


def _folder_of(src: Path) -> Path:
    return src.parent if is_pattern(src) else src


def check_output(src: Path | str, dst: Path | str, overwrite: bool) -> None:
    """Refuse an output that cannot be written or (without ``overwrite``) exists, before anything is read.

    A numbered pattern (``out/%06d.png``) is a sequence output, checked by
    :func:`~vsr_pipeline.io.sequence_sink.check_sequence_output`; a file output as
    :func:`~vsr_pipeline.io.files.check_paths` checks it. Raises a one-sentence VsrError.
    """
    src, dst = Path(src), Path(dst)
    seq_in = is_sequence_input(src)
    if is_sequence_output(dst):
        if not seq_in and not src.exists():
            check_paths(src, dst, overwrite)  # names the missing input
        check_sequence_output(dst, overwrite, source_folder=_folder_of(src) if seq_in else None)
        return
    if dst.suffix.lower() in IMAGE_FORMATS:
        raise ConfigError(f"Output {str(dst)!r} is one image; to write an image sequence give a numbered pattern such as {str(dst.parent / ('%06d' + dst.suffix))!r}.")
    check_file_output(src, dst, overwrite)


def check_file_output(src: Path | str, dst: Path | str, overwrite: bool) -> None:
    """Refuse the file ``dst`` (a video, a report, a kernel) made from the source ``src`` as
    :func:`~vsr_pipeline.io.files.check_paths` does; a sequence's folder stands for the sequence.

    A sequence whose folder is missing passes: :func:`probe_source` names it.
    """
    src = Path(src)
    if is_sequence_input(src):
        if _folder_of(src).is_dir():
            check_paths(_folder_of(src), dst, overwrite)
        return
    check_paths(src, dst, overwrite)


def probe_source(src: Path | str, dst: Path | str | None = None, *, fps: float | None = None) -> VideoInfo:
    """Describe the source at ``src``: a video file (:func:`probe`) or an image sequence (listed and checked).

    ``fps`` is an image sequence's frame rate; a video has its own, so ``fps`` with a
    video is a :class:`ConfigError`, as is a sequence without ``fps`` whose output
    ``dst`` is a video file.
    """
    src = Path(src)
    if not is_sequence_input(src):
        if fps is not None:
            raise ConfigError(f"--fps applies to image-sequence input; the video {str(src)!r} has its own frame rate, so drop --fps.")
        return probe(src)
    info = probe_sequence(src, fps)
    if fps is None and dst is not None and not is_sequence_output(dst):
        raise ConfigError(f"Image sequence {str(src)!r} has no frame rate of its own; give one with --fps (e.g. --fps 24) to make the video {str(dst)!r}.")
    return info


def frame_count(src: Path | str, info: VideoInfo) -> int:
    """Frames in the source ``src`` probed as ``info``: a sequence's listing, or a file's video packets counted."""
    return info.frame_count if info.sequence is not None else count_packets(src)


def open_source(
    src: Path | str, info: VideoInfo, *, start: float | None = None, duration: float | None = None, on_error: str = "stop",
) -> Source:
    """The source that reads ``src`` as ``info`` describes it (from :func:`probe_source`)."""
    if info.sequence is not None:
        return SequenceReader(info, start=start, duration=duration)
    return VideoReader(src, start=start, duration=duration, on_error=on_error, side_streams=(), info=info)


def open_sink(
    dst: Path | str, info: VideoInfo, size: tuple[int, int], options: EncodeOptions = EncodeOptions(),
    *, replace: bool = False, first_number: int = 1, staging: Staging | None = None,
) -> Sink:
    """The sink that writes ``dst``: an image sequence for a numbered pattern, else a video file.

    ``size`` is (width, height) of the frames it takes; ``first_number`` numbers a
    sequence's first frame; ``staging`` (sequences only) makes it resumable, see
    :class:`~vsr_pipeline.io.sequence_sink.Staging`. Options it cannot honour are a :class:`ConfigError` here.
    """
    if is_sequence_output(dst):
        return SequenceWriter(dst, info, size, options, replace=replace, first_number=first_number, staging=staging)
    if staging is not None:
        raise ValueError(f"staging is for image-sequence outputs, not {str(dst)!r}")
    return VideoWriter(dst, info, size, options, replace=replace)
