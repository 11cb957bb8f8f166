"""HDR10 static metadata: mastering display colour volume and content light level.

:func:`read_hdr` takes them from the side data of a decoded frame (FFmpeg attaches the
HEVC/AV1 SEI or metadata OBUs there, and the container's values where the bitstream has
none). :func:`add_hdr_options` hands them to encoders that write them into the
bitstream — libx265 (``x265-params``) and libsvtav1 (``svtav1-params``) — so that both
writer backends, which apply the same encoder options, produce the same metadata, and a
resumable run's segments each carry it into the joined file. Other encoders cannot carry
it: a warning says that the output lacks it. Only values the input has are passed on.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

log = logging.getLogger(__name__)

XY = tuple[Fraction, Fraction]  # CIE 1931 xy chromaticity

# Encoder -> (its params option, mastering display key, content light key).
_PARAMS = {
    "libx265": ("x265-params", "master-display", "max-cll"),
    "libsvtav1": ("svtav1-params", "mastering-display", "content-light"),
}
_warned: set[tuple[str, str, str]] = set()  # (input, encoder, what): warn once per file, not per segment


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086 mastering display colour volume (AVMasteringDisplayMetadata)."""

    red: XY | None  # primaries and white point: None when the input does not give them
    green: XY | None
    blue: XY | None
    white_point: XY | None
    min_luminance: Fraction | None  # cd/m²; None when the input does not give it
    max_luminance: Fraction | None

    @property
    def complete(self) -> bool:
        """True when primaries, white point and luminance range are all known."""
        return None not in (self.red, self.green, self.blue, self.white_point, self.min_luminance, self.max_luminance)


@dataclass(frozen=True)
class ContentLight:
    """CTA-861.3 content light level (AVContentLightMetadata), in cd/m²."""

    max_cll: int  # maximum content light level
    max_fall: int  # maximum frame-average light level


def _ratio(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den else None


def parse_mastering_display(raw: bytes) -> MasteringDisplay | None:
    """An AVMasteringDisplayMetadata payload -> :class:`MasteringDisplay`; None if it is short or empty.

    The struct is ten AVRationals — primaries (r, g, b order), white point, min and max
    luminance — then the ``has_primaries`` and ``has_luminance`` flags, all C ints.
    """
    if len(raw) < 88:
        return None
    v = struct.unpack_from("=22i", raw)
    has_primaries, has_luminance = v[20], v[21]
    points: list[XY | None] = [None] * 4
    if has_primaries:
        for i in range(4):
            x, y = _ratio(v[4 * i], v[4 * i + 1]), _ratio(v[4 * i + 2], v[4 * i + 3])
            points[i] = (x, y) if x is not None and y is not None else None
    lo = _ratio(v[16], v[17]) if has_luminance else None
    hi = _ratio(v[18], v[19]) if has_luminance else None
    md = MasteringDisplay(*points, min_luminance=lo, max_luminance=hi)
    if md == MasteringDisplay(None, None, None, None, None, None):
        return None
    return md


def parse_content_light(raw: bytes) -> ContentLight | None:
    """An AVContentLightMetadata payload (two unsigned ints: MaxCLL, MaxFALL) -> :class:`ContentLight`."""
    if len(raw) < 8:
        return None
    return ContentLight(*struct.unpack_from("=2I", raw))


def frame_side_data(frame) -> dict[str, bytes]:
    """The side data of a decoded frame by type name (``"MASTERING_DISPLAY_METADATA"``, ...) -> payload."""
    container = getattr(frame, "side_data", None)
    if container is None:
        return {}
    out: dict[str, bytes] = {}
    keyed = hasattr(container, "keys")  # PyAV >= 14 maps types to entries; older PyAV lists the entries
    for key in list(container.keys()) if keyed else list(container):
        entry = container[key] if keyed else key
        kind = getattr(entry, "type", key)
        out[str(getattr(kind, "name", kind)).upper()] = bytes(entry)
    return out


def read_hdr(frame) -> tuple[MasteringDisplay | None, ContentLight | None]:
    """The HDR10 static metadata a decoded frame carries: (mastering display, content light level)."""
    sd = frame_side_data(frame)
    md = sd.get("MASTERING_DISPLAY_METADATA")
    cll = sd.get("CONTENT_LIGHT_LEVEL")
    return (
        parse_mastering_display(md) if md is not None else None,
        parse_content_light(cll) if cll is not None else None,
    )


def _units(value: Fraction, per_unit: int) -> int:
    return round(value * per_unit)


def _decimal(value: Fraction) -> str:
    return f"{float(value):.10g}"


def mastering_display_param(codec: str, md: MasteringDisplay) -> str:
    """``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` as ``codec`` reads it; ``md`` must be complete.

    x265 takes chromaticities in 0.00002 units and luminance in 0.0001 cd/m²; SVT-AV1
    takes the values themselves as decimals.
    """
    if codec == "libx265":
        chroma, light = (lambda v: str(_units(v, 50000))), (lambda v: str(_units(v, 10000)))
    else:
        chroma = light = _decimal
    points = "".join(f"{name}({chroma(p[0])},{chroma(p[1])})" for name, p in
                     (("G", md.green), ("B", md.blue), ("R", md.red), ("WP", md.white_point)))
    return f"{points}L({light(md.max_luminance)},{light(md.min_luminance)})"


def _warn_once(path: Path, codec: str, what: str, message: str, *args) -> None:
    key = (str(path), codec, what)
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def add_hdr_options(codec: str, path: Path, md: MasteringDisplay | None, cll: ContentLight | None,
                    options: dict[str, str]) -> None:
    """Add ``md`` and ``cll`` (of the input at ``path``) to the encoder ``options`` for ``codec``, in place.

    An entry the user gave in ``--encoder-args`` (``-x265-params master-display=...``) is
    kept as given. An encoder without such an option, or incomplete mastering display
    metadata (the encoders need all of it), gets a warning and the metadata is not carried.
    """
    if md is None and cll is None:
        return
    if codec not in _PARAMS:
        _warn_once(path, codec, "codec", "%s: %s cannot carry the input's HDR10 mastering display / content light "
                   "level metadata; the output lacks it (libx265 and libsvtav1 carry it)", path, codec)
        return
    option, md_key, cll_key = _PARAMS[codec]
    entries: list[tuple[str, str]] = []
    if md is not None:
        if md.complete:
            entries.append((md_key, mastering_display_param(codec, md)))
        else:
            _warn_once(path, codec, "incomplete", "%s: the input's mastering display metadata lacks its primaries or "
                       "luminance; %s needs both, so the output lacks it", path, codec)
    if cll is not None:
        entries.append((cll_key, f"{cll.max_cll},{cll.max_fall}"))
    params = [p for p in options.get(option, "").split(":") if p]
    given = {p.partition("=")[0] for p in params}
    params += [f"{key}={value}" for key, value in entries if key not in given]
    if params:
        options[option] = ":".join(params)
