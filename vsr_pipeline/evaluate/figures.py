"""Show a result: the per-frame PSNR plot and the side-by-side crop figure (``vsrpipe compare``).

:func:`plot_psnr` draws an :class:`~vsr_pipeline.evaluate.scoring.EvaluationReport`'s
per-frame PSNR over time. :func:`compare_frames` builds the side-by-side figure of SR
papers: the whole frame with the crop marked, then the crop of every input (and of the
reference) enlarged with nearest-neighbour zoom so that single pixels stay visible, each
captioned with its label and its PSNR/SSIM against the reference.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.evaluate.scoring import _SSIM_MIN, EvaluationReport
from vsr_pipeline.io.files import check_paths, write_bytes_atomic
from vsr_pipeline.io.sequence import is_sequence_input, read_image
from vsr_pipeline.io.source import open_source, probe_source
from vsr_pipeline.metrics import psnr, ssim

__all__ = [
    "plot_formats",
    "plot_psnr",
    "CompareResult",
    "Panel",
    "compare_frames",
    "render_compare",
    "figure_size",
    "parse_crop",
    "load_frame",
    "IMAGE_EXTENSIONS",
]


# --------------------------------------------------------------------------- plot


def plot_formats() -> set[str]:
    """File extensions (without dot) :func:`plot_psnr` can write."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return set(FigureCanvasAgg.get_supported_filetypes())


def plot_psnr(report: EvaluationReport, path: Path | str) -> Path:
    """Plot per-frame PSNR over time, with the mean, to ``path`` (PNG, or PDF/SVG by extension).

    Identical frames (infinite PSNR) are left out of the line and counted in the title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state, no display

    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in plot_formats():
        raise ConfigError(f"Plot file {str(path)!r} needs an extension matplotlib writes, such as .png, .pdf or .svg.")
    t = np.array([r.time for r in report.frames])
    y = np.array([r.psnr for r in report.frames])
    finite = np.isfinite(y)
    fig = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(t[finite], y[finite], lw=1.2, marker="." if len(y) <= 60 else None, color="tab:blue", label="per frame")
    if finite.any():
        m = float(y[finite].mean())
        ax.axhline(m, color="tab:red", lw=1, ls="--", label=f"mean of finite {m:.2f} dB" if not finite.all() else f"mean {m:.2f} dB")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("PSNR on Y (dB)")
    title = f"{report.output.name} vs {report.reference.name} (crop {report.crop} px)"
    if not finite.all():
        title += f"; {int((~finite).sum())} identical frame(s) not drawn"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format=ext)
    return write_bytes_atomic(path, buf.getvalue())


# --------------------------------------------------------------------------- compare

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_MARGIN = 8  # px around and between panels
_FONT_SIZE = 14  # caption font size in px
_LINE = 18  # caption line height in px
_CAPTION = 2 * _LINE + 6  # caption block under each panel: label line + metrics line
_MAX_AUTO_PANEL = 320  # auto zoom: largest integer zoom keeping a panel's longer side within this
_MARK = (220, 30, 30)  # colour of the crop rectangle on the overview


@dataclass(frozen=True)
class Panel:
    """One crop of the figure and its scores against the reference."""

    label: str  # caption
    source: Path  # file it came from
    psnr: float | None = None  # dB on Y over the crop; None without a reference (and for it)
    ssim: float | None = None  # on Y over the crop; None without a reference or for crops under 11x11
    is_reference: bool = False  # True for the reference's own panel


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare_frames` wrote."""

    output: Path  # the figure
    size: tuple[int, int]  # (width, height) of the figure in pixels
    zoom: int  # nearest-neighbour enlargement used
    frame_size: tuple[int, int]  # (width, height) of the compared frames
    panels: tuple[Panel, ...]  # in figure order, the reference last


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` -> (x, y, w, h) in pixels; ``ConfigError`` unless four integers with w, h > 0."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--crop must be four integers x,y,w,h (left, top, width, height in pixels), got {text!r}.") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise ConfigError(f"--crop {text!r}: x and y must be >= 0 and the width and height > 0.")
    return x, y, w, h


def load_frame(path: Path | str, index: int = 0) -> torch.Tensor:
    """Frame ``index`` (from 0) of a video or an image sequence, or the picture of an image file (``index`` ignored).

    A sequence is a folder or a pattern (``frames/%06d.png``), listed and checked as
    ``enhance`` lists it; only the one image asked for is read. Returns RGB float32 (3, H, W)
    in [0, 1]. Raises ``InputError`` for unreadable files and for an index beyond the end.
    """
    path = Path(path)
    if is_sequence_input(path):
        files = probe_source(path).sequence.files
        if index >= len(files):
            raise InputError(f"Frame {index} is beyond the end of {str(path)!r}, which has {len(files)} images (frames 0 to {len(files) - 1}).")
        return read_image(Path(files[index]))[0]
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise InputError(f"Input file {str(path)!r} does not exist.")
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"Input file {str(path)!r} is not an image Pillow can read ({exc}).") from exc
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    source = open_source(path, probe_source(path))
    count = 0
    try:
        for frame in source:
            if frame.index == index:
                return frame.rgb
            count += 1
    finally:
        source.close()
    raise InputError(
        f"Frame {index} is beyond the end of {str(path)!r}, which has {count} frames (numbered 0 to {count - 1})."
    )


def _auto_zoom(w: int, h: int) -> int:
    return max(1, _MAX_AUTO_PANEL // max(w, h))


def _font():
    from PIL import ImageFont

    try:
        import matplotlib  # ships DejaVu Sans, so captions look the same everywhere

        return ImageFont.truetype(str(Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"), _FONT_SIZE)
    except (ImportError, OSError):
        return ImageFont.load_default(size=_FONT_SIZE)


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (rgb.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def figure_size(frame_size: tuple[int, int], crop: tuple[int, int, int, int], zoom: int, panels: int) -> tuple[int, int]:
    """(width, height) of the figure :func:`render_compare` draws for ``panels`` crops."""
    fw, fh = frame_size
    pw, ph = crop[2] * zoom, crop[3] * zoom
    ow = max(1, round(fw * ph / fh))  # the overview, as tall as a panel
    return _MARGIN + ow + panels * (_MARGIN + pw) + _MARGIN, _MARGIN + ph + _CAPTION + _MARGIN


def render_compare(
    frames: Sequence[torch.Tensor],
    panels: Sequence[Panel],
    *,
    crop: tuple[int, int, int, int],
    zoom: int,
    overview: torch.Tensor,
    overview_caption: str | tuple[str, ...],
):
    """Draw the figure: the ``overview`` frame with the crop marked, then each frame's crop.

    ``frames`` are (3, H, W) in [0, 1], one per panel; ``overview_caption`` is one or two
    lines. Returns a PIL RGB image of :func:`figure_size`.
    """
    from PIL import Image, ImageDraw

    x, y, w, h = crop
    fh, fw = overview.shape[-2:]
    width, height = figure_size((fw, fh), crop, zoom, len(panels))
    pw, ph = w * zoom, h * zoom
    ow = max(1, round(fw * ph / fh))
    fig = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(fig)
    font = _font()

    ov = Image.fromarray(_to_uint8(overview)).resize((ow, ph), Image.Resampling.LANCZOS)
    fig.paste(ov, (_MARGIN, _MARGIN))
    sx, sy = ow / fw, ph / fh
    box = [_MARGIN + x * sx, _MARGIN + y * sy, _MARGIN + (x + w) * sx - 1, _MARGIN + (y + h) * sy - 1]
    draw.rectangle(box, outline=_MARK, width=max(1, round(min(ow, ph) / 150)))
    captions = (overview_caption,) if isinstance(overview_caption, str) else overview_caption
    for i, text in enumerate(captions[:2]):
        draw.text((_MARGIN, _MARGIN + ph + 4 + i * _LINE), _fit(draw, text, font, ow), fill="black" if i == 0 else "dimgray", font=font)

    left = _MARGIN + ow + _MARGIN
    for rgb, panel in zip(frames, panels):
        patch = _to_uint8(rgb[:, y : y + h, x : x + w])
        patch = patch.repeat(zoom, axis=0).repeat(zoom, axis=1)  # nearest neighbour: pixels stay square
        fig.paste(Image.fromarray(patch), (left, _MARGIN))
        draw.text((left, _MARGIN + ph + 4), _fit(draw, panel.label, font, pw), fill="black", font=font)
        if panel.psnr is not None:
            value = "inf" if panel.psnr == math.inf else f"{panel.psnr:.2f}"
            text = f"{value} dB" + (f" / {panel.ssim:.4f}" if panel.ssim is not None else "")
            draw.text((left, _MARGIN + ph + 4 + _LINE), _fit(draw, text, font, pw), fill="black", font=font)
        left += pw + _MARGIN
    return fig


def compare_frames(
    inputs: Sequence[Path | str],
    out: Path | str,
    *,
    frame: int,
    crop: tuple[int, int, int, int] | str,
    reference: Path | str | None = None,
    labels: Sequence[str] | None = None,
    zoom: int | None = None,
    reference_frame: int | None = None,
    overwrite: bool = False,
) -> CompareResult:
    """Write a PNG comparing the same crop of frame ``frame`` of several videos, image sequences or images.

    Args:
        inputs: videos and image sequences (frame ``frame`` is taken) or images (used as they are), all the same size.
        out: the figure (.png).
        frame: frame index, from 0, in every video input.
        crop: (x, y, w, h) in pixels of the frames, or the string "x,y,w,h".
        reference: ground truth (video, image sequence or image) of the same size. With it every panel is
            captioned with PSNR/SSIM on Y over the crop, and the reference gets the last
            panel; without it there are no metrics.
        labels: one caption per input, optionally one more for the reference; default: the
            file names (and "reference").
        zoom: integer nearest-neighbour enlargement; None picks the largest that keeps a
            panel within 320 px.
        reference_frame: frame of the reference to use (default ``frame``), e.g. 150 + N
            when the inputs were made from the reference with ``--start 6``.
        overwrite: replace an existing ``out``.

    Returns:
        A :class:`CompareResult`. Raises ``ConfigError`` for a crop outside the frame (the
        message gives the frame size), bad labels or zoom; ``InputError`` for unreadable
        inputs, a frame beyond a clip's end, or inputs of different sizes; ``OutputError``
        for the output path.
    """
    inputs = [Path(p) for p in inputs]
    out = Path(out)
    if not inputs:
        raise ConfigError("compare needs at least one input.")
    if frame < 0 or (reference_frame is not None and reference_frame < 0):
        raise ConfigError(f"--frame must be >= 0, got {min(frame, reference_frame or 0)}.")
    box = parse_crop(crop) if isinstance(crop, str) else tuple(int(v) for v in crop)
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
        raise ConfigError(f"--crop must be x,y,w,h with x, y >= 0 and w, h > 0, got {box}.")
    if zoom is not None and not (isinstance(zoom, int) and 1 <= zoom <= 64):
        raise ConfigError(f"--zoom must be an integer from 1 to 64, got {zoom!r}.")
    sources = [*inputs, *([Path(reference)] if reference is not None else [])]
    names = list(labels) if labels is not None else [p.name for p in inputs] + (["reference"] if reference is not None else [])
    if labels is not None:
        if len(names) == len(inputs) and reference is not None:
            names.append("reference")
        if len(names) != len(sources):
            extra = " (or one more for the reference)" if reference is not None else ""
            raise ConfigError(f"--labels gives {len(names)} labels for {len(inputs)} inputs{extra}.")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"The figure {str(out)!r} is written as PNG; give it a .png name.")
    for src in sources:
        check_paths(src, out, overwrite)

    images = [load_frame(p, frame) for p in inputs]
    if reference is not None:
        images.append(load_frame(Path(reference), frame if reference_frame is None else reference_frame))
    sizes = [(int(t.shape[-1]), int(t.shape[-2])) for t in images]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{p.name} {w}x{h}" for p, (w, h) in zip(sources, sizes))
        raise InputError(f"compare needs inputs of one size, got {listed}.")
    fw, fh = sizes[0]
    x, y, w, h = box
    if x + w > fw or y + h > fh:
        raise ConfigError(
            f"--crop {x},{y},{w},{h} reaches ({x + w}, {y + h}), outside the {fw}x{fh} frame; "
            f"keep x + w <= {fw} and y + h <= {fh}."
        )
    z = zoom or _auto_zoom(w, h)

    panels = []
    ref_patch = images[-1][:, y : y + h, x : x + w] if reference is not None else None
    for i, (src, name) in enumerate(zip(sources, names)):
        is_ref = reference is not None and i == len(sources) - 1
        p = s = None
        if ref_patch is not None and not is_ref:
            patch = images[i][:, y : y + h, x : x + w]
            p = float(psnr(patch, ref_patch))
            s = float(ssim(patch, ref_patch)) if min(w, h) >= _SSIM_MIN else None
        panels.append(Panel(label=name, source=src, psnr=p, ssim=s, is_reference=is_ref))

    shown = "reference" if reference is not None else inputs[0].name
    ref_index = frame if reference is None or reference_frame is None else reference_frame
    caption = (f"frame {ref_index} of {shown}, {fw}x{fh}",)
    if reference is not None:
        caption += ("PSNR (dB) / SSIM on Y of the crop",)
    fig = render_compare(images, panels, crop=box, zoom=z, overview=images[-1] if reference is not None else images[0], overview_caption=caption)
    buf = io.BytesIO()
    fig.save(buf, format="PNG", optimize=True)
    write_bytes_atomic(out, buf.getvalue())
    return CompareResult(output=out, size=fig.size, zoom=z, frame_size=(fw, fh), panels=tuple(panels))
