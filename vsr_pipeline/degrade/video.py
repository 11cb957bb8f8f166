"""Make LR test material from a clip: every frame through a :class:`Degradation`, plus noise.

The reader and writer are the ones ``vsrpipe enhance`` uses, so timestamps, audio and
subtitles come out exactly as enhance would keep them, and the output appears only when
the whole clip was written.

Encoding defaults are chosen so that the file holds the degradation and nothing else:
4:4:4 chroma (exact LR size even when it is odd, no chroma blur) and lossless coding
where the encoder has a lossless mode. ``crf``/``pix_fmt`` give realistic, lossy material.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
import torch

from vsr_pipeline.degrade.operator import Degradation, parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.reader import Frame
from vsr_pipeline.io.source import check_output, is_sequence_output, probe_source
from vsr_pipeline.io.transcode import Progress, transcode
from vsr_pipeline.io.encoding import CODEC_ALIASES, CONTAINERS

__all__ = ["DegradeResult", "degrade_video", "frame_noise", "LOSSLESS"]

log = logging.getLogger(__name__)

# Encoder -> (crf, extra FFmpeg options) that make it lossless; used when ``crf`` is None.
# (x264: constant QP 0, which unlike crf 0 is lossless at 10 bits too.)
LOSSLESS: dict[str, tuple[int | None, str]] = {
    "libx264": (None, "-x264-params qp=0"),
    "libx265": (None, "-x265-params lossless=1:log-level=error"),
    "libvpx-vp9": (0, "-lossless 1"),  # libvpx refuses lossless beside a crf other than 0
}


@dataclass(frozen=True)
class DegradeResult:
    """The report of one :func:`degrade_video` run."""

    output: Path  # file written
    frames: int  # frames written (= frames read)
    lost_frames: int  # frames lost to input damage (on_error="skip")
    seconds: float  # wall time
    input_size: tuple[int, int]  # (width, height) of the HR frames
    output_size: tuple[int, int]  # (width, height) of the LR frames
    degradation: str  # canonical spec of the operator applied
    scale: float  # SR factor
    noise: float  # Gaussian noise sigma in 8-bit units (0 = none)
    seed: int  # noise seed
    codec: str  # encoder used
    pix_fmt: str  # pixel format written
    lossless: bool  # True when the encoder ran in a lossless mode


def frame_noise(shape: tuple[int, ...], sigma: float, seed: int, index: int) -> torch.Tensor:
    """Gaussian noise of standard deviation ``sigma``/255 for frame ``index``: float32 ``shape``.

    Deterministic per (seed, index): the same frame gets the same noise whatever else runs.
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    return torch.randn(shape, generator=gen, dtype=torch.float32) * (float(sigma) / 255.0)


def degrade_video(
    src: Path | str,
    dst: Path | str,
    *,
    scale: float,
    degradation: str | Degradation,
    noise: float = 0.0,
    crf: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    encode: EncodeOptions = EncodeOptions(),
    start: float | None = None,
    duration: float | None = None,
    on_error: str = "stop",
    progress: Progress | None = None,
    fps: float | None = None,
) -> DegradeResult:
    """Write ``dst``: every frame of ``src`` degraded, at LR size ``Degradation.lr_size``.

    Args:
        src, dst: HR input clip and LR output file (container from the extension). ``src``
            may be an image sequence (a folder, ``frames/%06d.png``, ``frames/*.tif``) and
            ``dst`` a numbered pattern (``lr/%06d.png``), as ``enhance`` takes them; a
            sequence is written losslessly at the input's depth (``pix_fmt`` rgb24/rgb48le).
        scale: SR factor, > 1 (the LR clip is ``scale`` times smaller).
        degradation: spec string (``"bicubic"``, ``"gauss:sigma=2.0"``, …, see
            docs/degradations.md) or a :class:`Degradation` of the same scale; ``estimate``
            is refused (there is no kernel to degrade with).
        noise: standard deviation of additive Gaussian noise in 8-bit units (``noise=5``
            adds N(0, (5/255)²) to each RGB value of the LR frame); 0 for none.
        crf: constant rate factor; None: lossless (x264 crf 0, x265/VP9 lossless mode),
            else the writer's default for encoders without a lossless mode.
        seed: noise seed; frame i always gets the same noise for a given seed.
        overwrite: replace an existing ``dst``.
        encode: codec, preset, pix_fmt, side streams, backend (``crf`` wins over
            ``encode.crf``); ``pix_fmt`` None means yuv444p (yuv444p10le for deeper input)
            when the encoder has it.
        start, duration: degrade only this section (seconds); timestamps then start at 0,
            as with ``vsrpipe enhance --start``.
        on_error: damaged input: "stop" or "skip".
        progress: called as ``progress(done, expected)`` after each frame.
        fps: the frame rate of an image-sequence ``src`` (``--fps``), needed for a video
            ``dst``; refused with a video ``src``.

    Returns:
        A :class:`DegradeResult`. Raises ``ConfigError`` for scale <= 1, a malformed or
        ``estimate`` spec, negative noise, or a subsampled pixel format with an odd LR size;
        ``InputError``/``OutputError`` for the paths. Nothing is left at ``dst`` on failure.
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    op = _check_options(scale, degradation, noise, start, duration, on_error)
    check_output(src, dst, overwrite)
    info = probe_source(src, dst, fps=fps)
    in_w, in_h = info.display_size
    lr_h, lr_w = op.lr_size(in_h, in_w)
    if in_h % op.scale or in_w % op.scale:
        log.warning(
            "%s is %dx%d, not a multiple of the scale %g: the LR clip is %dx%d and a x%g upscale of it "
            "will not be %dx%d, so crop the reference before evaluating",
            src, in_w, in_h, op.scale, lr_w, lr_h, op.scale, in_w, in_h,
        )
    crf = crf if crf is not None else encode.crf
    if is_sequence_output(dst):  # every image format written is lossless; the sink refuses a crf
        encode, lossless = dataclasses.replace(encode, crf=crf), True
    else:
        encode, lossless = _encode_options(dst, info, (lr_w, lr_h), encode, crf)

    def transform(frames: Iterable[Frame]) -> Iterator[tuple[Frame, torch.Tensor]]:
        for frame in frames:
            with torch.no_grad():
                lr = op(frame.rgb)  # (3, h, w)
            if noise > 0:
                lr = lr + frame_noise(tuple(lr.shape), noise, seed, frame.index)
            yield frame, lr.clamp_(0.0, 1.0)

    stats = transcode(
        src, dst, info, (lr_w, lr_h), transform, encode=encode, replace=overwrite,
        start=start, duration=duration, on_error=on_error, progress=progress,
    )
    return DegradeResult(
        output=dst,
        frames=stats.frames,
        lost_frames=stats.lost,
        seconds=time.perf_counter() - t0,
        input_size=(in_w, in_h),
        output_size=(lr_w, lr_h),
        degradation=op.spec,
        scale=op.scale,
        noise=float(noise),
        seed=int(seed),
        codec=stats.codec,
        pix_fmt=stats.pix_fmt,
        lossless=lossless,
    )


def _check_options(scale, degradation, noise, start, duration, on_error) -> Degradation:
    """Every check that needs no file, in the order a user would fix them."""
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise ConfigError(f"--scale must be a number greater than 1, got {scale!r}.") from None
    if not scale > 1.0 or scale == float("inf"):
        raise ConfigError(
            f"--scale must be greater than 1 for degrade (it makes the LR clip that many times smaller), got {scale:g}."
        )
    if isinstance(degradation, Degradation):
        op = degradation
        if op.scale != scale:
            raise ConfigError(f"The degradation '{op.spec}' is built for x{op.scale:g}, but --scale is {scale:g}.")
    else:
        op = parse_degradation(degradation, scale)
    if op.kind == "estimate":
        raise ConfigError(
            "degrade needs a known kernel, and 'estimate' has none; estimate it first "
            "(vsrpipe estimate-kernel) and pass it as kernel:PATH.npy, or use a named blur such as gauss:sigma=2.0."
        )
    if not (noise >= 0 and np.isfinite(noise)):
        raise ConfigError(f"--noise must be >= 0 (a standard deviation in 8-bit units), got {noise:g}.")
    for name, value in (("--start", start), ("--duration", duration)):
        if value is not None and not np.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}.")
    if start is not None and start < 0 or duration is not None and duration <= 0:
        raise ConfigError("--start must be >= 0 and --duration > 0.")
    if on_error not in ("stop", "skip"):
        raise ConfigError(f"--on-error must be 'stop' or 'skip', got {on_error!r}.")
    return op


def _lossless_only(codec: str) -> bool:
    """True for an encoder that only codes losslessly (FFmpeg's codec descriptor: lossless, not lossy)."""
    try:
        c = av.Codec(codec, "w")
    except Exception:
        return False
    return bool(c.lossless and not c.lossy)


def _encode_options(
    dst: Path, info: VideoInfo, size: tuple[int, int], encode: EncodeOptions, crf: int | None
) -> tuple[EncodeOptions, bool]:
    """Fill in degrade's defaults (4:4:4, lossless) and refuse an odd size in subsampled chroma."""
    ext = dst.suffix.lower()
    default_codec = CONTAINERS[ext][1] if ext in CONTAINERS else None  # unknown: the writer says so
    codec = CODEC_ALIASES.get((encode.codec or "").lower(), encode.codec or default_codec)

    try:
        formats = {f.name for f in (av.Codec(codec, "w").video_formats or [])} if codec else set()
    except Exception:  # unknown encoder: the writer gives the message
        formats = set()
    pix_fmt = encode.pix_fmt
    if pix_fmt is None:
        want = "yuv444p" if info.bit_depth <= 8 else "yuv444p10le"
        if want in formats:
            pix_fmt = want
        elif "yuv444p" in formats:
            pix_fmt = "yuv444p"
    w, h = size
    if not formats:
        sub_w = sub_h = False  # unknown encoder or container: the writer refuses it with its own message
    elif pix_fmt is not None:
        try:
            fmt = av.VideoFormat(pix_fmt)
            sub_w, sub_h = fmt.chroma_width(16) < 16, fmt.chroma_height(16) < 16
        except (ValueError, TypeError):
            sub_w = sub_h = False  # the writer refuses unknown formats itself
    else:
        sub_w = sub_h = True  # the writer's default is 4:2:0
    if (sub_w and w % 2) or (sub_h and h % 2):
        shown = pix_fmt or "4:2:0"
        need = "an even width and height" if sub_w and sub_h else "an even width" if sub_w else "an even height"
        raise ConfigError(
            f"The LR frames are {w}x{h}, and {shown} needs {need}; padding them would "
            "change the LR size, so use a 4:4:4 format (--pix-fmt yuv444p) or an HR size that gives an even LR size."
        )

    lossless = False
    encoder_args = encode.encoder_args
    if crf is None and codec in LOSSLESS:
        crf, extra = LOSSLESS[codec]
        encoder_args = f"{extra} {encoder_args}".strip()
        lossless = True
    elif crf is None and codec and _lossless_only(codec):
        lossless = True  # FFV1, HuffYUV, UT Video, ...: lossless is all they do
    elif crf is None:
        log.info("%s has no lossless mode here; using its default quality", codec)
    return dataclasses.replace(encode, crf=crf, pix_fmt=pix_fmt, encoder_args=encoder_args), lossless
