"""The largest output frames vsrpipe makes, refused before anything is decoded (docs/troubleshooting.md).

Three limits, each checked by one function here:

* :func:`check_encoder_size`: what the encoder takes. Every encoder opened through
  libavcodec (both writer backends) refuses a picture unless
  ``(8·w + 1024)·(h + 128) < 2³¹ − 1`` (``av_image_check_size2``: about 268 megapixels,
  16384×16000 but not 16384×16384); some encoders cap each side lower
  (:data:`ENCODER_MAX_SIDE`). An :class:`~vsr_pipeline.errors.OutputError` (exit 4): another
  encoder may take the size.
* :func:`check_frame_memory`, without ``--tile``: an output frame larger than
  :data:`MAX_UNTILED_FRAME_BYTES` as the float32 RGB the network writes. The network's
  working memory grows with the frame (its activations are many times the output), so a
  larger frame is run on tiles. A :class:`~vsr_pipeline.errors.ConfigError` (exit 7): ``--tile``
  or a smaller ``--scale`` is the fix.
* :func:`check_frame_memory`, with ``--tile``: a frame larger than
  :data:`MAX_FRAME_SHARE_OF_RAM` of the machine's memory. Tiles bound the network, not the
  frame: the stitched output, the writer's queue (VapourSynth: its own frames) hold whole
  frames, and VapourSynth aborts the process when a frame cannot be allocated. VapourSynth
  itself has no other size limit (a side is a C ``int``). Also a ConfigError.

This module imports nothing heavy.
"""

from __future__ import annotations

import os

from vsr_pipeline.errors import ConfigError, OutputError

FRAME_BYTES_PER_PIXEL = 12  # float32 RGB: the form of every output frame in the stage
MAX_UNTILED_FRAME_BYTES = 2 * 1024**3  # 2 GiB ≈ 179 Mpx: 4K ×4 (15360×8640, 1.5 GiB) still runs whole
MAX_FRAME_SHARE_OF_RAM = 0.25  # with --tile: one frame may take at most this share of the physical memory

# Encoders with a limit per side of their own, on top of FFmpeg's area limit: codec -> (max width, max height),
# as the libraries state them and as measured (PyAV 19, libavcodec 63; 2 px steps at 4:2:0).
ENCODER_MAX_SIDE: dict[str, tuple[int, int]] = {
    "libx264": (16384, 16384),  # x264: "width or height larger than 16384 unsupported"
    "libx264rgb": (16384, 16384),
    "libsvtav1": (16384, 8704),  # SVT-AV1: source width ≤ 16384, height ≤ 8704
    "libvpx-vp9": (65536, 65536),  # VP9 codes width − 1 and height − 1 in 16 bits
}  # libx265, ffv1 and the others: FFmpeg's area limit only


def output_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Output (height, width) for an input of h×w at ``scale`` (rounded to the nearest pixel)."""
    return max(1, round(h * scale)), max(1, round(w * scale))


def ffmpeg_accepts(width: int, height: int) -> bool:
    """True when libavcodec opens an encoder at ``width`` × ``height`` (``av_image_check_size2``'s rule)."""
    return width > 0 and height > 0 and (8 * width + 1024) * (height + 128) < 2**31 - 1


def check_encoder_size(codec: str, width: int, height: int) -> None:
    """OutputError unless ``codec`` encodes ``width`` × ``height`` frames (the size it is fed, padding included)."""
    size = f"{width}x{height}"
    cap = ENCODER_MAX_SIDE.get(codec)
    if cap is not None and (width > cap[0] or height > cap[1]):
        wider = [
            f"{name} (up to {w}x{h})" for name, (w, h) in ENCODER_MAX_SIDE.items()
            if w >= width and h >= height and not name.endswith("rgb")  # libx264rgb: RGB formats only
        ]
        other = f", or --codec {' / '.join(wider)}" if wider and ffmpeg_accepts(width, height) else ""
        raise OutputError(
            f"The output frames would be {size}, larger than {codec} encodes (at most {cap[0]}x{cap[1]}); "
            f"choose a smaller --scale{other}."
        )
    if not ffmpeg_accepts(width, height):
        raise OutputError(
            f"The output frames would be {size} ({width * height / 1e6:.0f} megapixels), larger than any FFmpeg "
            "encoder accepts (about 268 megapixels: (8·width + 1024)·(height + 128) must stay below 2³¹); "
            "choose a smaller --scale."
        )


def physical_memory() -> int | None:
    """Bytes of physical memory, None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def check_frame_memory(width: int, height: int, *, scale: float, tile: int, flags: tuple[str, str] = ("--scale", "--tile")) -> None:
    """ConfigError when ``width`` × ``height`` output frames take more memory than allowed (see the module).

    ``flags`` names the scale and tile options in the caller's terms (``("scale", "tile")``,
    written ``scale=4``, in VapourSynth); the message says which limit was met and how to get under it.
    """
    scale_flag, tile_flag = flags
    sep = " " if scale_flag.startswith("-") else "="
    need = FRAME_BYTES_PER_PIXEL * width * height
    said = f"{scale_flag}{sep}{scale:g} makes {width}x{height} output frames, {_gib(need)} each as float32 RGB"
    if not tile and need > MAX_UNTILED_FRAME_BYTES:
        raise ConfigError(
            f"{said}, more than the {_gib(MAX_UNTILED_FRAME_BYTES)} a frame may take when the network runs on whole "
            f"frames; give {tile_flag}{sep}512 (or another tile size) or a smaller {scale_flag}."
        )
    ram = physical_memory()
    if ram is not None and need > MAX_FRAME_SHARE_OF_RAM * ram:
        raise ConfigError(
            f"{said}, more than {MAX_FRAME_SHARE_OF_RAM:.0%} of this machine's {_gib(ram)} of memory (whole frames are "
            f"held even with {tile_flag}); choose a smaller {scale_flag}."
        )
