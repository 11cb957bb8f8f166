"""What an output will be, decided before the first frame: container, encoder, pixel format, options.

:func:`plan_output` checks everything that can be checked without writing: the container
holds the codec and the side streams, the pixel format suits the encoder, every
``--encoder-args`` option is one the encoder or the muxer has, and ``--crf`` lies in the
encoder's range. A problem is a :class:`ConfigError` or :class:`OutputError` with one
sentence, raised before any file exists.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import av

from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io.color import ColorSpec
from vsr_pipeline.io.hdr import add_hdr_options
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.rgb import EXACT_RGB, bit_depth as rgb_bit_depth, is_exact_rgb

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
# CRF range each library accepts. The encoder's own ``crf`` AVOption is read first; this
# table is what remains where that option is open-ended (x264 and x265 declare -1..FLT_MAX
# and leave the check to the library) or where PyAV cannot list the encoder's options.
CRF_RANGE: dict[str, tuple[float, float]] = {
    "libx264": (0, 51),
    "libx264rgb": (0, 51),
    "libx265": (0, 51),
    "libvpx-vp9": (0, 63),
    "libsvtav1": (0, 63),
    "libaom-av1": (0, 63),
}
# Muxer options that both backends apply: PyAV hands them to the muxer when it writes the
# header, the ffmpeg binary takes them as output options. PyAV cannot list a muxer's
# AVOptions, so these are kept by hand from `ffmpeg -h muxer=NAME` (a test checks each name
# against the ffmpeg binary); they leave the streams' timing alone.
_MOV_OPTIONS = frozenset({"movflags", "brand", "moov_size", "frag_duration", "frag_size", "min_frag_duration"})
_MKV_OPTIONS = frozenset(
    {"cues_to_front", "reserve_index_space", "cluster_size_limit", "cluster_time_limit", "write_crc32"}
)
MUXER_OPTIONS: dict[str, frozenset[str]] = {
    "mp4": _MOV_OPTIONS,
    "mov": _MOV_OPTIONS,
    "matroska": _MKV_OPTIONS,
    "webm": _MKV_OPTIONS,
}
# Generic AVCodecContext options for video encoding, used only where PyAV (before
# CodecContext.supported_options) cannot list them; a subset of FFmpeg's
# libavcodec/options_table.h entries flagged E and V (a test checks it against the runtime list).
_GENERIC_FALLBACK = frozenset({
    "b", "maxrate", "minrate", "bufsize", "bt", "g", "bf", "keyint_min", "refs", "qmin", "qmax", "qdiff",
    "qcomp", "qblur", "flags", "flags2", "threads", "thread_type", "profile", "level", "slices", "trellis",
    "global_quality", "compression_level", "sar", "field_order", "strict",
})
# Things the writer decides itself: -KEY in --encoder-args -> what to use instead.
_WRITER_SETS = {
    "pix_fmt": "use --pix-fmt",
    "pixel_format": "use --pix-fmt",
    "c": "use --codec",
    "codec": "use --codec",
    "vcodec": "use --codec",
    "f": "the output extension picks the container",
    "colorspace": "the colour tags follow the input",
    "color_range": "the colour tags follow the input",
    "color_primaries": "the colour tags follow the input",
    "color_trc": "the colour tags follow the input",
    "aspect": "the two backends read -aspect differently (display vs sample aspect ratio); use -sar",
    "an": "use --no-audio",
    "sn": "use --no-subtitles",
}
_AV_OPT_FLAG_ENCODING_PARAM = 1
_AV_OPT_FLAG_VIDEO_PARAM = 16

_SPC_NAMES = {1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}
_PRI_NAMES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22"}
_TRC_NAMES = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}


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
    options: dict[str, str] = field(default_factory=dict)  # encoder options (AVCodecContext and private)
    side_streams: tuple[int, ...] = ()
    format_options: dict[str, str] = field(default_factory=dict)  # muxer options (MUXER_OPTIONS)
    rgb: bool = False  # an RGB pixel format: samples written as they are, tagged RGB / full range

    @property
    def av_colorspace(self) -> int:
        """The AVColorSpace tag of the output (0 = RGB for RGB formats)."""
        return 0 if self.rgb else self.color.av_colorspace

    @property
    def av_color_range(self) -> int:
        """The AVColorRange tag of the output (2 = full for RGB formats)."""
        return 2 if self.rgb else self.color.av_color_range


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


def _writable_formats(codec: str, formats: list[str], wanted: str = "") -> str:
    """"with CODEC use ...": the encoder's formats this writer fills (planar YUV, exact RGB), RGB first for an RGB request."""
    yuv, rgb = [], []
    for name in formats:
        try:
            fmt = av.VideoFormat(name)
        except (ValueError, TypeError):
            continue
        if name in EXACT_RGB:
            rgb.append(name)
        elif not fmt.is_rgb and len({c.plane for c in fmt.components}) >= 3 and not fmt.is_big_endian and not name.startswith("yuva"):
            yuv.append(name)
    parts = [f"the YUV formats {', '.join(yuv)}"] if yuv else []
    if rgb:
        parts.insert(0 if wanted.startswith(("gbr", "rgb", "bgr", "0", "a")) else len(parts), f"the RGB formats {', '.join(rgb)}")
    if not parts:
        return f"{codec} has no pixel format this writer can fill"
    hint = ""
    if not rgb and wanted in EXACT_RGB:
        hint = " (for RGB output use --codec ffv1 in .mkv, lossless, or libx264rgb)"
    return f"with {codec} use one of {' or '.join(parts)}{hint}"


HDR_CODEC = "libx265"  # the default encoder for HDR10 input: it carries the mastering display and light level


def _hdr_default(muxer: str, default: str) -> str:
    """libx265 for HDR10 input when no --codec was given (libx264 would drop the metadata), where the container holds it."""
    if default.startswith("libx264") and HDR_CODEC in av.codecs_available and HDR_CODEC in _codecs_of(muxer):
        log.info("the input carries HDR10 metadata: encoding with %s, which keeps it (--codec chooses another)", HDR_CODEC)
        return HDR_CODEC
    return default


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
    if opts.codec is None and (info.mastering_display is not None or info.content_light is not None):
        default_codec = _hdr_default(muxer, default_codec)
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
            f"Encoder {codec} cannot write pixel format {pix_fmt!r}; {_writable_formats(codec, formats, pix_fmt)}."
        )
    fmt = av.VideoFormat(pix_fmt)
    rgb = is_exact_rgb(pix_fmt)
    if not rgb and (fmt.is_rgb or len({c.plane for c in fmt.components}) < 3 or fmt.is_big_endian):
        raise OutputError(
            f"Pixel format {pix_fmt!r} is not supported for output; {_writable_formats(codec, formats, pix_fmt)}."
        )
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
    depth = rgb_bit_depth(pix_fmt) if rgb else max(c.bits for c in fmt.components)
    matrix = info.color.matrix if info.color_tagged else ("bt709" if h >= 720 else "bt601")
    full_range = info.color.full_range or pix_fmt.startswith("yuvj")  # the JPEG formats are full range whatever the input's range
    color = ColorSpec(matrix=matrix, full_range=full_range, bit_depth=depth)

    options, format_options = _encoder_settings(codec, muxer, opts)
    add_hdr_options(codec, info.path, info.mastering_display, info.content_light, options)

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
    return _Plan(
        muxer, codec, pix_fmt, w + pad_w, h + pad_h, (pad_w, pad_h), color, chroma_shift, options, tuple(side),
        format_options, rgb,
    )


@dataclass(frozen=True)
class EncoderOptions:
    """The AVOption names an encoder takes, as the linked FFmpeg reports them."""

    generic: frozenset[str]  # AVCodecContext options meant for video encoding (b, g, bf, maxrate, ...)
    private: dict  # the encoder's own options by name (tune, x264-params, crf, ...) -> PyAV's description


@functools.lru_cache(maxsize=None)
def encoder_options(codec: str) -> EncoderOptions | None:
    """The options ``codec`` accepts, read from FFmpeg through PyAV; None where PyAV cannot list them.

    PyAV >= 17 gives both sets (``CodecContext.supported_options``, which walks the
    AVOptions of a fresh AVCodecContext and of the encoder's private class). Older PyAV
    lists only the private ones (``Codec.descriptor.options``); the generic names then
    come from :data:`_GENERIC_FALLBACK`.
    """
    av_codec = av.Codec(codec, "w")
    supported = getattr(av.CodecContext.create(av_codec), "supported_options", None)
    if supported is not None:
        wanted = _AV_OPT_FLAG_ENCODING_PARAM | _AV_OPT_FLAG_VIDEO_PARAM
        generic = frozenset(o.name for o in supported.generic if int(o.flags) & wanted == wanted)
        return EncoderOptions(generic, {o.name: o for o in supported.private})
    descriptor = getattr(av_codec, "descriptor", None)
    if descriptor is not None:
        return EncoderOptions(_GENERIC_FALLBACK, {o.name: o for o in descriptor.options})
    log.warning("this PyAV (%s) cannot list encoder options: --encoder-args names go unchecked", av.__version__)
    return None


def _encoder_settings(codec: str, muxer: str, opts: EncodeOptions) -> tuple[dict[str, str], dict[str, str]]:
    """The encoder and muxer options for ``opts``; :class:`ConfigError` for any the output would not apply.

    Every ``--encoder-args`` key must be an option of ``codec`` (private, or a generic
    AVCodecContext option for video encoding; a ``:v`` stream specifier is dropped) or one
    of :data:`MUXER_OPTIONS` for ``muxer``. Both backends apply exactly these, so both are
    held to the same names. ``--crf`` (or ``-crf``) must be inside the encoder's range.
    """
    known = encoder_options(codec)
    muxer_known = MUXER_OPTIONS.get(muxer, frozenset())
    hint = f"run `ffmpeg -h encoder={codec}` to list its options"
    extra: dict[str, str] = {}
    format_options: dict[str, str] = {}
    crf_arg: str | None = None
    for key, value in parse_encoder_args(opts.encoder_args).items():
        name, _, spec = key.partition(":")  # "b:v" -> "b"; the video stream is the only one encoded
        if name in _WRITER_SETS:
            raise ConfigError(f"--encoder-args cannot set -{key} for {codec}: {_WRITER_SETS[name]}.")
        codec_option = known is not None and (name in known.private or name in known.generic)
        if name in muxer_known and not spec and not codec_option:
            format_options[name] = value
        elif name == "crf" or codec_option or known is None:  # None: PyAV cannot list them
            if spec not in ("", "v", "v:0"):
                raise ConfigError(
                    f"--encoder-args option -{key} is for a stream other than the video stream, the only one "
                    f"encoded ({codec}); audio and subtitles are copied as they are."
                )
            if name == "crf":
                crf_arg = value  # checked below, as --crf is
            else:
                extra[name] = value
        else:
            muxer_part = muxer_list = ""
            if muxer_known:
                muxer_part = f" or of the {muxer} muxer"
                muxer_list = f" (the {muxer} muxer options taken here: {', '.join(sorted(muxer_known))})"
            raise ConfigError(
                f"--encoder-args option -{key} is not an option of the {codec} encoder{muxer_part}; "
                f"run `ffmpeg -h encoder={codec}` to list the encoder's options{muxer_list}."
            )

    options: dict[str, str] = {}
    if crf_arg is not None:
        crf: str | None = _checked_crf(codec, known, crf_arg, "-crf", " in --encoder-args")
    elif opts.crf is not None:
        crf = _checked_crf(codec, known, str(opts.crf), "--crf", "")
    else:
        crf = None if DEFAULT_CRF.get(codec) is None else str(DEFAULT_CRF[codec])
    if crf is not None:
        options["crf"] = crf
        if codec == "libvpx-vp9":
            options["b"] = "0"  # constant-quality mode needs bitrate 0
    if opts.preset is not None and known is not None and "preset" not in known.private:
        raise ConfigError(f"{codec} has no preset; leave out --preset, or {hint}.")
    preset = opts.preset or DEFAULT_PRESET.get(codec)
    if preset is not None:
        options["preset"] = str(preset)
    if codec == "libx265" and "x265-params" not in extra:
        options["x265-params"] = "log-level=error"  # x265 prints a banner per run otherwise
    options.update(extra)
    return options, format_options


def _checked_crf(codec: str, known: EncoderOptions | None, text: str, flag: str, where: str) -> str:
    """``text`` if ``codec`` takes it as CRF, else :class:`ConfigError`; ``flag``/``where`` say where it came from."""
    option = known.private.get("crf") if known is not None else None
    if known is not None and option is None:
        av_codec = av.Codec(codec, "w")
        kind = " (it is lossless)" if av_codec.lossless and not av_codec.lossy else ""
        raise ConfigError(
            f"{codec} has no CRF setting{kind}; leave out {flag}{where}, or set its quality with its own "
            f"options in --encoder-args (run `ffmpeg -h encoder={codec}` to list them)."
        )
    lo, hi = _crf_range(codec, option)
    if hi is None and option is None:
        return text  # PyAV cannot list the options and the table does not know the encoder
    whole = getattr(getattr(option, "type", None), "name", "").startswith(("INT", "UINT"))
    span = f"{lo:g} to {hi:g}" if hi is not None else f"{lo:g} or more"
    kind = "a whole-number CRF" if whole else "a CRF"
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}{where} is not a number; {codec} takes {kind} from {span}.") from None
    if not (value >= lo and (hi is None or value <= hi)):
        raise ConfigError(f"{flag} {text}{where} is out of range for {codec}, which takes {kind} from {span}.")
    if whole and not value.is_integer():
        raise ConfigError(f"{flag} {text}{where} is not a whole number; {codec} takes {kind} from {span}.")
    return text


def _crf_range(codec: str, option) -> tuple[float, float | None]:
    """The CRF range of ``codec``: its ``crf`` AVOption's bounds where they are finite, else :data:`CRF_RANGE`."""
    lo, hi = CRF_RANGE.get(codec, (0, None))
    if option is not None:
        lo = max(lo, getattr(option, "min", 0), 0)  # a minimum of -1 means "not set", not a CRF
        top = getattr(option, "max", float("inf"))
        if top < 1e9:  # x264/x265 say FLT_MAX and leave the range to the library
            hi = top if hi is None else min(hi, top)
    return lo, hi


@functools.lru_cache(maxsize=None)
def _codecs_of(muxer: str) -> frozenset[str]:
    """Names of the codecs the FFmpeg muxer ``muxer`` can store."""
    container = av.open(os.devnull, "w", format=muxer)
    try:
        return frozenset(container.supported_codecs)
    finally:
        container.close()
