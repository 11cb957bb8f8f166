"""Format checks and conversions of the VapourSynth driver, all through VapourSynth's own resizer (zimg).

The stage works on RGB float frames. :func:`to_rgbs` brings a clip there, honouring its
``_Matrix``/``_Range``/``_ChromaLocation`` properties and falling back to the CLI's
defaults where they are absent (BT.601 below 720 lines, BT.709 from 720; limited range for
YUV); :func:`from_rgbs` brings the stage's output back to the input's family and depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import vapoursynth as vs

core = vs.core

# matrix coefficients (H.273) of the CLI's defaults for untagged YUV (FFmpeg's convention)
MATRIX_SD, MATRIX_HD = 6, 1
UNSPECIFIED = 2
RANGE_LIMITED, RANGE_FULL = 0, 1  # the resizer's range values


@dataclass(frozen=True)
class ColourInfo:
    """How the input's colour is read and written back."""

    matrix: int  # H.273 matrix coefficients (YUV), from _Matrix or the CLI's default
    range: int  # RANGE_LIMITED / RANGE_FULL, from _Range/_ColorRange or the family's default
    chromaloc: int | None  # _ChromaLocation when the clip says, else the resizer's default


def fail(message: str) -> vs.Error:
    """A ``vs.Error`` in the house style: the function's name, then one sentence."""
    return vs.Error(f"enhance: {message}")


def check_clip(clip) -> None:
    """Refuse what the filter cannot take, each with one sentence naming the fix."""
    if not isinstance(clip, vs.VideoNode):
        raise fail(f"clip must be a VapourSynth video clip (VideoNode), got {type(clip).__name__}.")
    fmt = clip.format
    if fmt is None or fmt.id == 0:
        raise fail("the clip has a variable format; convert it to one format first, e.g. core.resize.Bicubic(clip, format=vs.YUV420P8).")
    if clip.width == 0 or clip.height == 0:
        raise fail("the clip has a variable frame size; resize it to one size first, e.g. core.resize.Bicubic(clip, 1280, 720).")
    family, st, bits = fmt.color_family, fmt.sample_type, fmt.bits_per_sample
    ok = (
        (family in (vs.YUV, vs.GRAY) and st == vs.INTEGER and 8 <= bits <= 16)
        or (family == vs.GRAY and st == vs.FLOAT and bits == 32)
        or (family == vs.RGB and st == vs.INTEGER and 8 <= bits <= 16)
        or (family == vs.RGB and st == vs.FLOAT and bits in (16, 32))
    )
    if not ok:
        raise fail(
            f"format {fmt.name} is not supported; convert to YUV (8-16 bit), GRAY, RGB24/RGB48, RGBS or RGBH first."
        )


def colour_info(clip: vs.VideoNode) -> ColourInfo:
    """The input's colour description, read from frame 0's properties (CLI defaults where absent)."""
    props = clip.get_frame(0).props
    matrix = int(props.get("_Matrix", UNSPECIFIED))
    if clip.format.color_family == vs.YUV and matrix in (UNSPECIFIED, 0):
        matrix = MATRIX_HD if clip.height >= 720 else MATRIX_SD
    if "_Range" in props:  # R74+: 0 limited, 1 full
        rng = int(props["_Range"])
    elif "_ColorRange" in props:  # older API: 0 full, 1 limited
        rng = RANGE_FULL if int(props["_ColorRange"]) == 0 else RANGE_LIMITED
    else:
        rng = RANGE_LIMITED if clip.format.color_family == vs.YUV else RANGE_FULL
    loc = props.get("_ChromaLocation")
    return ColourInfo(matrix=matrix, range=rng, chromaloc=None if loc is None else int(loc))


def to_rgbs(clip: vs.VideoNode, colour: ColourInfo) -> vs.VideoNode:
    """The clip as RGBS (float RGB, full range) for the stage."""
    family = clip.format.color_family
    if family == vs.RGB:
        return clip if clip.format.id == vs.RGBS else core.resize.Point(clip, format=vs.RGBS, range_in=RANGE_FULL)
    if family == vs.GRAY:
        gray = core.resize.Point(clip, format=vs.GRAYS, range_in=colour.range, range=RANGE_FULL)
        return core.std.ShufflePlanes([gray, gray, gray], [0, 0, 0], vs.RGB)
    kw = {"matrix_in": colour.matrix, "range_in": colour.range}
    if colour.chromaloc is None:
        kw["chromaloc_in"] = 1  # untagged: centre-sited, as the CLI's own conversion assumes
    return core.resize.Bicubic(clip, format=vs.RGBS, **kw)


def from_rgbs(rgb: vs.VideoNode, like: vs.VideoNode, colour: ColourInfo) -> vs.VideoNode:
    """The stage's RGBS output in ``like``'s family and bit depth (its size is the output's)."""
    fmt = like.format
    family = fmt.color_family
    if family == vs.RGB:
        return rgb if fmt.id == vs.RGBS else core.resize.Point(rgb, format=fmt.id)
    if family == vs.GRAY:
        planes = [core.std.ShufflePlanes(rgb, i, vs.GRAY) for i in range(3)]
        mean = core.std.Expr(planes, "x y + z + 3 /")
        return core.resize.Point(mean, format=fmt.id, range_in=RANGE_FULL, range=colour.range)
    kw = {"matrix": colour.matrix, "range": colour.range, "chromaloc": 1 if colour.chromaloc is None else colour.chromaloc}
    return core.resize.Bicubic(rgb, format=fmt.id, **kw)


def check_output_size(like: vs.VideoNode, width: int, height: int) -> None:
    """Refuse an output size the input's subsampled format cannot hold (one sentence)."""
    fmt = like.format
    if fmt.color_family != vs.YUV:
        return
    sw, sh = 1 << fmt.subsampling_w, 1 << fmt.subsampling_h
    if width % sw or height % sh:
        raise fail(
            f"the output would be {width}x{height}, which {fmt.name} cannot hold (its chroma needs sizes divisible by "
            f"{sw}x{sh}); pass output='RGBS', or a scale that gives such a size."
        )
