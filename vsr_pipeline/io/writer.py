"""Encoded output through FFmpeg: PyAV in process (default) or an external ``ffmpeg`` binary.

Both backends give the same guarantees:

* every output frame carries its input frame's timestamp (VFR stays VFR);
* audio and subtitle streams are copied without re-encoding (or dropped on request);
* colour tags (matrix, range, primaries, transfer) are carried over;
* output goes to a temporary file beside the target, renamed only by :meth:`close`;
  :meth:`abort` (or any exception inside ``with``) removes it.

The ``ffmpeg`` backend receives the frames as raw video inside a NUT stream on its stdin,
which keeps exact timestamps, and takes the audio/subtitle streams from the input file.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io.color import ColorSpec, rgb_to_yuv
from vsr_pipeline.io.probe import VideoInfo, open_input

log = logging.getLogger(__name__)

# SVT-AV1 logs its banner to stderr unless told otherwise; the CLI owns the terminal.
os.environ.setdefault("SVT_LOG", "1")

# Output extension -> (FFmpeg muxer, default video codec).
CONTAINERS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".m4v": ("mp4", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".mov": ("mov", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
}
CODEC_ALIASES = {
    "h264": "libx264",
    "x264": "libx264",
    "avc": "libx264",
    "hevc": "libx265",
    "h265": "libx265",
    "x265": "libx265",
    "av1": "libsvtav1",
    "svtav1": "libsvtav1",
    "vp9": "libvpx-vp9",
    "prores": "prores_ks",
}
# Sensible quality defaults per encoder (visually transparent for typical footage).
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 30, "libvpx-vp9": 30, "libaom-av1": 30}
DEFAULT_PRESET = {"libx264": "medium", "libx265": "medium", "libsvtav1": "8"}

_SPC_NAMES = {1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
_PRI_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22"}
_TRC_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode the output; click options map onto these fields."""

    backend: str = "pyav"  # "pyav" (in process) or "ffmpeg" (external binary via ffmpeg-python)
    codec: str | None = None  # encoder name or alias; None: by container (libx264, webm: libvpx-vp9)
    crf: int | None = None  # constant rate factor; None: the encoder's entry in DEFAULT_CRF
    preset: str | None = None  # encoder preset; None: DEFAULT_PRESET
    pix_fmt: str | None = None  # None: yuv420p for 8-bit input, yuv420p10le for deeper input
    encoder_args: str = ""  # extra FFmpeg output options, e.g. "-tune film -x264-params aq-mode=3"
    copy_audio: bool = True  # copy audio streams without re-encoding
    copy_subtitles: bool = True  # copy subtitle streams without re-encoding
    ffmpeg_path: str | None = None  # ffmpeg backend: binary to run; None: PATH, then imageio-ffmpeg's


@dataclass
class _Plan:
    """Everything decided about an output before the first frame is written."""

    muxer: str
    codec: str
    pix_fmt: str
    width: int  # encoded size (even where the chroma subsampling needs it)
    height: int
    pad: tuple[int, int]  # (right, bottom) pixels added by edge replication
    color: ColorSpec
    chroma_shift: tuple[int, int]
    options: dict[str, str] = field(default_factory=dict)
    side_streams: tuple[int, ...] = ()


def parse_encoder_args(text: str) -> dict[str, str]:
    """``"-tune film -x264-params aq-mode=3"`` -> ``{"tune": "film", "x264-params": "aq-mode=3"}``."""
    tokens = shlex.split(text or "")
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i]
        if not key.startswith("-") or i + 1 >= len(tokens):
            raise ConfigError(
                f"--encoder-args must be pairs of '-option value', got {text!r} (stuck at {key!r})."
            )
        out[key.lstrip("-")] = tokens[i + 1]
        i += 2
    return out


def find_ffmpeg(explicit: str | None = None) -> str:
    """The ffmpeg binary to run: ``explicit``, the one on PATH, else imageio-ffmpeg's."""
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def plan_output(
    path: Path, info: VideoInfo, size: tuple[int, int], opts: EncodeOptions
) -> _Plan:
    """Decide muxer, codec, pixel format, padding and colour for writing ``path``.

    ``size`` is the (width, height) of the frames that will be written. Raises
    :class:`OutputError` for a container or pixel format that cannot hold what was asked.
    """
    ext = path.suffix.lower()
    if ext not in CONTAINERS:
        known = ", ".join(sorted(CONTAINERS))
        raise OutputError(f"Output {str(path)!r} has an unsupported extension {ext or '(none)'!r}; use one of {known}.")
    muxer, default_codec = CONTAINERS[ext]
    codec = CODEC_ALIASES.get((opts.codec or "").lower(), opts.codec or default_codec)
    try:
        av_codec = av.Codec(codec, "w")
    except Exception as exc:
        raise OutputError(f"Video encoder {codec!r} is not available in this FFmpeg build.") from exc
    if av_codec.type != "video":
        raise OutputError(f"{codec!r} is not a video encoder.")
    holds = _codecs_of(muxer)
    if codec not in holds and av_codec.name not in holds:
        raise OutputError(f"The {ext} container cannot hold {codec} video; pick another --codec or output extension.")

    pix_fmt = opts.pix_fmt or ("yuv420p10le" if info.bit_depth > 8 else "yuv420p")
    formats = [f.name for f in (av_codec.video_formats or [])]
    if opts.pix_fmt is None and formats and pix_fmt not in formats:
        # e.g. an 8-bit-only encoder fed 10-bit input: take its best format and say so
        fallback = next((f for f in formats if f.startswith("yuv420p")), formats[0])
        log.warning("%s cannot encode %s; writing %s instead", codec, pix_fmt, fallback)
        pix_fmt = fallback
    if formats and pix_fmt not in formats:
        raise OutputError(
            f"Encoder {codec} cannot write pixel format {pix_fmt!r}; it supports {', '.join(formats)}."
        )
    fmt = av.VideoFormat(pix_fmt)
    if fmt.is_rgb or len({c.plane for c in fmt.components}) < 3 or fmt.is_big_endian:
        raise OutputError(f"Pixel format {pix_fmt!r} is not supported for output; use a planar YUV format such as yuv420p.")
    chroma_shift = ((16 // fmt.chroma_width(16)).bit_length() - 1, (16 // fmt.chroma_height(16)).bit_length() - 1)
    w, h = size
    pad_w = w % 2 if chroma_shift[0] else 0
    pad_h = h % 2 if chroma_shift[1] else 0
    if pad_w or pad_h:
        log.warning(
            "output size %dx%d is odd and %s subsamples chroma: padded to %dx%d by repeating the "
            "last column/row (use --pix-fmt yuv444p to keep the exact size)",
            w, h, pix_fmt, w + pad_w, h + pad_h,
        )
    depth = max(c.bits for c in fmt.components)
    matrix = info.color.matrix if info.color_tagged else ("bt709" if h >= 720 else "bt601")
    color = ColorSpec(matrix=matrix, full_range=info.color.full_range, bit_depth=depth)

    options = {}
    crf = opts.crf if opts.crf is not None else DEFAULT_CRF.get(codec)
    if crf is not None:
        options["crf"] = str(crf)
        if codec == "libvpx-vp9":
            options["b"] = "0"  # constant-quality mode needs bitrate 0
    preset = opts.preset or DEFAULT_PRESET.get(codec)
    if preset is not None:
        options["preset"] = str(preset)
    extra = parse_encoder_args(opts.encoder_args)
    if codec == "libx265" and "x265-params" not in extra:
        options["x265-params"] = "log-level=error"  # x265 prints a banner per run otherwise
    options.update(extra)

    side = []
    if opts.copy_audio:
        side += [s.index for s in info.audio]
    if opts.copy_subtitles:
        side += [s.index for s in info.subtitles]
    for s in (*info.audio, *info.subtitles):
        if s.index in side and s.codec not in holds:
            flag = "--no-audio" if s.kind == "audio" else "--no-subtitles"
            fits = [e for e in CONTAINERS if s.codec in _codecs_of(CONTAINERS[e][0])]
            where = f"an output extension that holds it ({', '.join(fits)})" if fits else "another output extension"
            raise OutputError(
                f"The {ext} container cannot hold the input's {s.kind} stream #{s.index} ({s.codec}) without "
                f"re-encoding; use {where} or {flag}."
            )
    return _Plan(muxer, codec, pix_fmt, w + pad_w, h + pad_h, (pad_w, pad_h), color, chroma_shift, options, tuple(side))


@functools.lru_cache(maxsize=None)
def _codecs_of(muxer: str) -> frozenset[str]:
    """Names of the codecs the FFmpeg muxer ``muxer`` can store."""
    container = av.open(os.devnull, "w", format=muxer)
    try:
        return frozenset(container.supported_codecs)
    finally:
        container.close()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_path_for(path: Path) -> Path:
    """A fresh, hidden temporary path in the target's folder with the same extension."""
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial" + path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


class VideoWriter:
    """Write RGB frames (3, H, W) to ``path`` with the input's timestamps and side streams.

    Use as a context manager; :meth:`write` once per frame in order, then leaving the
    ``with`` block finishes the file and renames it into place. On an exception the
    temporary file is removed and nothing appears at ``path``.
    """

    def __init__(self, path: Path | str, info: VideoInfo, size: tuple[int, int], options: EncodeOptions = EncodeOptions()) -> None:
        self.path = Path(path)
        self.info = info
        self.options = options
        if options.backend not in ("pyav", "ffmpeg"):
            raise ConfigError(f"Unknown writer backend {options.backend!r}; use 'pyav' or 'ffmpeg'.")
        self.plan = plan_output(self.path, info, size, options)
        self.tmp: Path | None = None
        self.frames_written = 0
        self._impl: _PyAVSink | _FFmpegSink | None = None

    def __enter__(self) -> "VideoWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self, *, section: tuple[float, float | None] = (0.0, None)) -> None:
        """Create the temporary file and the encoder."""
        if not self.path.parent.is_dir():
            raise OutputError(f"Output folder {str(self.path.parent)!r} does not exist.")
        try:
            self.tmp = temp_path_for(self.path)
        except OSError as exc:
            raise OutputError(f"Output folder {str(self.path.parent)!r} is not writable ({exc.strerror}).") from exc
        try:
            if self.options.backend == "pyav":
                self._impl = _PyAVSink(self.tmp, self.info, self.plan)
            else:
                self._impl = _FFmpegSink(self.tmp, self.info, self.plan, self.options, section)
        except BaseException:
            self._remove_tmp()
            raise

    def write(self, rgb: torch.Tensor, pts: int, time_base: Fraction, side_packets: list = ()) -> None:
        """Encode one frame: ``rgb`` (3, H, W) float in [0, 1] at timestamp ``pts``·``time_base``."""
        assert self._impl is not None, "VideoWriter.open() first"
        planes = self._to_planes(rgb)
        self._impl.write(planes, pts, time_base, side_packets)
        self.frames_written += 1

    def close(self, trailing_packets: list = ()) -> Path:
        """Flush the encoder, finish the file and rename it to the target path."""
        assert self._impl is not None and self.tmp is not None
        try:
            self._impl.close(trailing_packets)
            os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp made it 0600; honour the umask
            os.replace(self.tmp, self.path)
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
        y, u, v = rgb_to_yuv(rgb, plan.color, plan.chroma_shift)
        dtype = np.uint8 if plan.color.bit_depth <= 8 else np.uint16
        return [p.cpu().numpy().astype(dtype) for p in (y, u, v)]


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
    frame.colorspace = plan.color.av_colorspace
    frame.color_range = plan.color.av_color_range
    frame.color_primaries = info.color_primaries
    frame.color_trc = info.color_trc
    return frame


class _PyAVSink:
    """The in-process backend."""

    def __init__(self, tmp: Path, info: VideoInfo, plan: _Plan) -> None:
        self.plan = plan
        self.info = info
        try:
            self.container = av.open(str(tmp), mode="w", format=plan.muxer)
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
        cc.colorspace = plan.color.av_colorspace
        cc.color_range = plan.color.av_color_range
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
                    self.side[index] = self.container.add_stream_from_template(source.streams[index])
            finally:
                source.close()
        try:
            self.container.start_encoding()
        except av.error.FFmpegError as exc:
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
            "colorspace": _SPC_NAMES.get(plan.color.av_colorspace, "unknown"),
            "range": "pc" if plan.color.full_range else "tv",
        }
        if info.color_primaries in _PRI_NAMES:
            params["color_primaries"] = _PRI_NAMES[info.color_primaries]
        if info.color_trc in _TRC_NAMES:
            params["color_trc"] = _TRC_NAMES[info.color_trc]
        streams = [video["v:0"].filter("setparams", **params)]
        if plan.side_streams:
            start, duration = section
            kw = {}
            if start:
                kw["ss"] = f"{start:.6f}"
            if duration is not None:
                kw["t"] = f"{duration:.6f}"
            source = ffmpeg.input(f"file:{info.path.resolve()}", **kw)
            streams += [source[str(i)] for i in plan.side_streams]
        out_kw: dict[str, str] = {
            "vcodec": plan.codec,
            "pix_fmt": plan.pix_fmt,
            "fps_mode": "passthrough",
            "enc_time_base": "demux",  # keep the input's time base: VFR timestamps stay exact
            "f": plan.muxer,
        }
        if plan.side_streams:
            out_kw["acodec"] = "copy"
            out_kw["scodec"] = "copy"
        out_kw.update(plan.options)
        args = ffmpeg.output(*streams, f"file:{tmp.resolve()}", **out_kw).overwrite_output().compile(cmd=exe)
        args[1:1] = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        self.args = args
        log.debug("ffmpeg command: %s", shlex.join(args))
        self.stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr)
        except OSError as exc:
            raise OutputError(f"Cannot run ffmpeg at {exe!r} ({exc.strerror}).") from exc
        self.container = av.open(self.proc.stdin, mode="w", format="nut")
        stream = self.container.add_stream("rawvideo", rate=info.fps or Fraction(25))
        stream.codec_context.width = plan.width
        stream.codec_context.height = plan.height
        stream.codec_context.pix_fmt = plan.pix_fmt
        stream.codec_context.time_base = info.time_base
        stream.codec_context.colorspace = plan.color.av_colorspace
        stream.codec_context.color_range = plan.color.av_color_range
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
