"""Encoded output through FFmpeg: PyAV in process (default) or an external ``ffmpeg`` binary.

Both backends give the same guarantees:

* every output frame carries its input frame's timestamp (VFR stays VFR);
* audio and subtitle streams are copied without re-encoding (or dropped on request);
* colour tags (matrix, range, primaries, transfer) are carried over, and so is HDR10
  static metadata (mastering display, content light level) where the encoder writes it
  (libx265, libsvtav1: the same encoder options for both backends; see :mod:`.hdr`);
* ``--encoder-args`` and ``--crf`` are checked against the encoder before anything is
  written: an option neither the encoder nor the muxer has, or a CRF outside the encoder's
  range, is a :class:`ConfigError` (PyAV would otherwise pass it on and FFmpeg ignore it);
* output goes to a temporary file beside the target, renamed only by :meth:`close`;
  :meth:`abort` (or any exception inside ``with``) removes it (and stops an ffmpeg child);
* an OS error while writing — a full disk (ENOSPC), an exceeded quota (EDQUOT), also when
  the container is finished and flushed — is an :class:`OutputError` naming the output;
* RGB pixel formats (``bgr0``, ``gbrp10le``, …) are written exactly (samples rounded from
  the frames, no colour matrix), tagged as RGB;
* stream metadata of the copied audio/subtitle streams (language, title) is kept.

The ``ffmpeg`` backend receives the frames as raw video inside a NUT stream on its stdin,
which keeps exact timestamps, and takes the audio/subtitle streams from the input file —
for a section (``--start``/``--duration``) from a copy of them cut exactly as the reader
cuts (:func:`cut_side_streams`), since ffmpeg's own ``-ss`` on stream-copied audio starts at
an earlier keyframe and shifts the whole output.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io.color import rgb_to_yuv
from vsr_pipeline.io.encoding import _PRI_NAMES, _SPC_NAMES, _TRC_NAMES, _Plan, find_ffmpeg, plan_output
from vsr_pipeline.io.files import describe_os_error, publish, temp_path_for
from vsr_pipeline.io.rgb import pack as pack_rgb
from vsr_pipeline.io.sink import SinkContext
from vsr_pipeline.io.probe import VideoInfo, open_input

log = logging.getLogger(__name__)


class VideoWriter(SinkContext):
    """Write RGB frames (3, H, W) to ``path`` with the input's timestamps and side streams.

    Use as a context manager; :meth:`write` once per frame in order, then leaving the
    ``with`` block finishes the file and renames it into place. On an exception the
    temporary file is removed and nothing appears at ``path``.
    """

    def __init__(
        self, path: Path | str, info: VideoInfo, size: tuple[int, int], options: EncodeOptions = EncodeOptions(),
        *, replace: bool = True,
    ) -> None:
        self.path = Path(path)
        self.replace = replace  # False: never replace a file that appears at ``path`` while writing
        self.info = info
        self.options = options
        if options.backend not in ("pyav", "ffmpeg"):
            raise ConfigError(f"Unknown writer backend {options.backend!r}; use 'pyav' or 'ffmpeg'.")
        self.plan = plan_output(self.path, info, size, options)
        self.tmp: Path | None = None
        self.frames_written = 0
        self._impl: _PyAVSink | _FFmpegSink | None = None

    def open(self, *, section: tuple[float, float | None] = (0.0, None)) -> None:
        """Create the temporary file and the encoder."""
        if not self.path.parent.is_dir():
            raise OutputError(f"Output folder {str(self.path.parent)!r} does not exist.")
        self.tmp = temp_path_for(self.path)
        try:
            try:
                if self.options.backend == "pyav":
                    self._impl = _PyAVSink(self.tmp, self.info, self.plan)
                else:
                    self._impl = _FFmpegSink(self.tmp, self.info, self.plan, self.options, section)
            except OSError as exc:
                raise self._os_error(exc) from exc
        except BaseException:
            self._remove_tmp()
            raise

    def write(self, rgb: torch.Tensor, pts: int, time_base: Fraction, side_packets: list = ()) -> None:
        """Encode one frame: ``rgb`` (3, H, W) float in [0, 1] at timestamp ``pts``·``time_base``."""
        assert self._impl is not None, "VideoWriter.open() first"
        planes = self._to_planes(rgb)
        try:
            self._impl.write(planes, pts, time_base, side_packets)
        except OSError as exc:  # includes PyAV's errno errors (ENOSPC, EDQUOT, EIO, ...)
            raise self._os_error(exc) from exc
        self.frames_written += 1

    def _os_error(self, exc: BaseException) -> OutputError:
        return OutputError(f"Could not write {str(self.path)!r}: {describe_os_error(exc)}.")

    def close(self, trailing_packets: list = ()) -> Path:
        """Flush the encoder, finish the file and rename it to the target path."""
        assert self._impl is not None and self.tmp is not None
        try:
            try:
                self._impl.close(trailing_packets)
                publish(self.tmp, self.path, replace=self.replace)
            except OSError as exc:  # e.g. the disk filled up while the container was flushed
                raise self._os_error(exc) from exc
        except BaseException:
            self.abort()
            raise
        self._impl = None
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete the temporary file; the target path is untouched."""
        if self._impl is not None:
            try:
                self._impl.abort()
            except Exception:  # best effort: the file goes anyway
                log.debug("writer abort failed", exc_info=True)
            self._impl = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self.tmp is not None:
            try:
                self.tmp.unlink(missing_ok=True)
            except OSError:
                log.warning("could not remove temporary file %s", self.tmp)

    def _to_planes(self, rgb: torch.Tensor) -> list[np.ndarray]:
        plan = self.plan
        if plan.pad != (0, 0):
            rgb = F.pad(rgb[None].float(), (0, plan.pad[0], 0, plan.pad[1]), mode="replicate")[0]
        if rgb.shape[-2:] != (plan.height, plan.width):
            raise ValueError(f"frame is {tuple(rgb.shape)}, writer expects 3x{plan.height}x{plan.width}")
        if plan.rgb:
            return pack_rgb(rgb, plan.pix_fmt)
        y, u, v = rgb_to_yuv(rgb, plan.color, plan.chroma_shift)
        dtype = np.uint8 if plan.color.bit_depth <= 8 else np.uint16
        return [p.cpu().numpy().astype(dtype) for p in (y, u, v)]


# Tags a muxer writes itself (statistics, durations): not carried from the source streams.
_GENERATED_TAGS = ("duration", "number_of_frames", "number_of_bytes", "bps", "_statistics", "vendor_id", "encoder")


def stream_metadata(stream) -> dict[str, str]:
    """The tags of a source stream worth keeping (language, title, handler name, ...)."""
    return {k: v for k, v in dict(stream.metadata).items() if not k.lower().startswith(_GENERATED_TAGS)}


def _fill_frame(planes: list[np.ndarray], plan: _Plan, info: VideoInfo) -> av.VideoFrame:
    frame = av.VideoFrame(plan.width, plan.height, plan.pix_fmt)
    for dst, src in zip(frame.planes, planes):
        item = src.dtype.itemsize
        stride = dst.line_size // item
        if stride != src.shape[1]:
            padded = np.zeros((src.shape[0], stride), dtype=src.dtype)
            padded[:, : src.shape[1]] = src
            src = padded
        dst.update(np.ascontiguousarray(src).tobytes())
    frame.colorspace = plan.av_colorspace
    frame.color_range = plan.av_color_range
    frame.color_primaries = info.color_primaries
    frame.color_trc = info.color_trc
    return frame


class _PyAVSink:
    """The in-process backend."""

    def __init__(self, tmp: Path, info: VideoInfo, plan: _Plan) -> None:
        self.plan = plan
        self.info = info
        try:
            self.container = av.open(
                str(tmp), mode="w", format=plan.muxer, container_options=dict(plan.format_options) or None
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"Cannot create output file next to {str(tmp.parent)!r} ({exc}).") from exc
        try:
            self._setup(info, plan)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, info: VideoInfo, plan: _Plan) -> None:
        rate = info.fps or Fraction(25)
        stream = self.container.add_stream(plan.codec, rate=rate)
        cc = stream.codec_context
        cc.width, cc.height = plan.width, plan.height
        cc.pix_fmt = plan.pix_fmt
        cc.time_base = info.time_base
        stream.time_base = info.time_base
        cc.colorspace = plan.av_colorspace
        cc.color_range = plan.av_color_range
        cc.color_primaries = info.color_primaries
        cc.color_trc = info.color_trc
        cc.options = dict(plan.options)
        cc.thread_type = "AUTO"
        self.video = stream
        self.side: dict[int, av.stream.Stream] = {}
        if plan.side_streams:
            source = open_input(info.path)
            try:
                for index in plan.side_streams:
                    self.side[index] = out = self.container.add_stream_from_template(source.streams[index])
                    out.metadata.update(stream_metadata(source.streams[index]))
            finally:
                source.close()
        try:
            self.container.start_encoding()  # mp4/mov write their header here
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):
                raise
            raise OutputError(f"The encoder refused the settings ({exc}); check --codec, --pix-fmt and --encoder-args.") from exc

    def _mux_side(self, packets) -> None:
        for index, packet in packets:
            out = self.side.get(index)
            if out is None:
                continue
            packet.stream = out
            self.container.mux(packet)

    def write(self, planes, pts: int, time_base: Fraction, side_packets) -> None:
        self._mux_side(side_packets)
        frame = _fill_frame(planes, self.plan, self.info)
        frame.pts = pts
        frame.time_base = time_base
        try:
            for packet in self.video.encode(frame):
                self.container.mux(packet)
        except av.error.FFmpegError as exc:
            if isinstance(exc, OSError):  # ENOSPC, EIO, ...: VideoWriter names the output and the reason
                raise
            raise OutputError(f"Encoding failed ({exc}).") from exc

    def close(self, trailing_packets) -> None:
        for packet in self.video.encode(None):  # flush the encoder's delayed frames
            self.container.mux(packet)
        self._mux_side(trailing_packets)
        self.container.close()

    def abort(self) -> None:
        self.container.close()


class _FFmpegSink:
    """The external-binary backend: raw frames in NUT on stdin, side streams from the input."""

    def __init__(self, tmp: Path, info: VideoInfo, plan: _Plan, opts: EncodeOptions, section: tuple[float, float | None]) -> None:
        import ffmpeg  # ffmpeg-python

        self.plan = plan
        self.info = info
        exe = find_ffmpeg(opts.ffmpeg_path)
        video = ffmpeg.input("pipe:0", format="nut")
        # Frame properties, not encoder options, decide the tags in current FFmpeg: set them
        # on the frames with setparams so that they reach the encoder and the container.
        params = {
            "colorspace": "gbr" if plan.rgb else _SPC_NAMES.get(plan.color.av_colorspace, "unknown"),
            "range": "pc" if plan.rgb or plan.color.full_range else "tv",
        }
        if info.color_primaries in _PRI_NAMES:
            params["color_primaries"] = _PRI_NAMES[info.color_primaries]
        if info.color_trc in _TRC_NAMES:
            params["color_trc"] = _TRC_NAMES[info.color_trc]
        streams = [video["v:0"].filter("setparams", **params)]
        self.side_file: Path | None = None
        if plan.side_streams:
            side_path, indices = info.path.resolve(), plan.side_streams
            if section != (0.0, None):  # the cut's packets have the reader's times already (-copyts keeps them)
                self.side_file = side_path = cut_side_streams(info.path, plan.side_streams, section)
                indices = tuple(range(len(plan.side_streams)))
            source = ffmpeg.input(f"file:{side_path}")
            streams += [source[str(i)] for i in indices]
        out_kw: dict[str, str] = {
            "vcodec": plan.codec,
            "pix_fmt": plan.pix_fmt,
            "fps_mode": "passthrough",
            "enc_time_base": "demux",  # keep the input's time base: VFR timestamps stay exact
            "f": plan.muxer,
        }
        if not plan.rgb:  # without it ffmpeg 7+ converts full range to limited for encoders that declare no ranges (ffv1)
            out_kw["color_range"] = params["range"]
        if plan.side_streams:
            out_kw["acodec"] = "copy"
            out_kw["scodec"] = "copy"
        out_kw.update(plan.options)
        out_kw.update(plan.format_options)  # output options that reach the muxer
        args = ffmpeg.output(*streams, f"file:{tmp.resolve()}", **out_kw).overwrite_output().compile(cmd=exe)
        # -copyts: every timestamp as the frames and packets have it, as the PyAV backend writes them; without
        # it ffmpeg moves each input to start at 0 (a resumable run's segment would lose its place in the file)
        args[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error", "-copyts"]
        self.args = args
        log.debug("ffmpeg command: %s", shlex.join(args))
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr)
        except OSError as exc:
            self._remove_side_file()
            raise OutputError(f"Cannot run ffmpeg at {exe!r} ({exc.strerror}).") from exc
        self.container = av.open(self.proc.stdin, mode="w", format="nut")
        stream = self.container.add_stream("rawvideo", rate=info.fps or Fraction(25))
        stream.codec_context.width = plan.width
        stream.codec_context.height = plan.height
        stream.codec_context.pix_fmt = plan.pix_fmt
        stream.codec_context.time_base = info.time_base
        stream.codec_context.colorspace = plan.av_colorspace
        stream.codec_context.color_range = plan.av_color_range
        stream.codec_context.color_primaries = info.color_primaries
        stream.codec_context.color_trc = info.color_trc
        stream.time_base = info.time_base
        self.video = stream
        self._lock = threading.Lock()

    def _fail(self) -> OutputError:
        self.proc.wait()
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {self.proc.returncode}"
        return OutputError(f"ffmpeg failed to write the output: {reason}")

    def write(self, planes, pts: int, time_base: Fraction, side_packets) -> None:
        frame = _fill_frame(planes, self.plan, self.info)
        frame.pts = pts
        frame.time_base = time_base
        try:
            for packet in self.video.encode(frame):
                self.container.mux(packet)
        except (BrokenPipeError, av.error.FFmpegError, OSError) as exc:
            raise self._fail() from exc

    def close(self, trailing_packets) -> None:
        try:
            for packet in self.video.encode(None):
                self.container.mux(packet)
            self.container.close()
            self.proc.stdin.close()
        except (BrokenPipeError, av.error.FFmpegError, OSError) as exc:
            raise self._fail() from exc
        if self.proc.wait() != 0:
            raise self._fail()
        self.stderr.close()
        self._remove_side_file()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        self.proc.kill()
        self.proc.wait()
        self.stderr.close()
        self._remove_side_file()

    def _remove_side_file(self) -> None:
        if self.side_file is not None:
            self.side_file.unlink(missing_ok=True)
            self.side_file = None


def cut_side_streams(src: Path, indices: tuple[int, ...], section: tuple[float, float | None]) -> Path:
    """Copy the side streams ``indices`` of ``src`` within ``section`` to a temporary file.

    ``section`` is the reader's (first frame's time, remaining duration): packets before it
    or at/after its end are dropped and the rest shifted back by its start, exactly as
    :class:`~vsr_pipeline.io.reader.VideoReader` does for the in-process backend. The copy
    keeps the input's container format (Matroska where that format cannot be written) and
    lives in the system's temporary folder; the caller deletes it.
    """
    begin, duration = section
    end = begin + duration if duration is not None else None
    fd, name = tempfile.mkstemp(prefix="vsrpipe-side-", suffix=src.suffix or ".mkv")
    os.close(fd)
    dst = Path(name)
    try:
        with open_input(src) as source:
            try:
                out = av.open(str(dst), mode="w")
            except (av.error.FFmpegError, ValueError):
                out = av.open(str(dst), mode="w", format="matroska")
            with out:
                streams = {}
                for i in indices:
                    streams[i] = s = out.add_stream_from_template(source.streams[i])
                    s.metadata.update(stream_metadata(source.streams[i]))
                for packet in source.demux([source.streams[i] for i in indices]):
                    if packet.pts is None or packet.size == 0:
                        continue
                    t = float(packet.pts * packet.time_base)
                    if t < begin - 1e-6 or (end is not None and t >= end):
                        continue
                    shift = int(round(begin / packet.time_base))
                    packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return dst


def _start_time_us(path: Path) -> int:
    """The start time libavformat (and so ffmpeg) gives ``path``, in microseconds."""
    with av.open(str(path)) as c:
        return c.start_time or 0
