"""Image sequences as a source: a folder, a printf pattern (``frames/%06d.png``) or a glob (``frames/*.tif``).

A sequence is one run of numbered files of one format: PNG and TIFF (8 or 16 bits per
sample, grey or colour; alpha is dropped), JPEG and BMP read through OpenCV; DPX and
OpenEXR (float, linear light clipped to [0, 1]) read through FFmpeg (PyAV). The frame number is the last run of digits in the file name; the
numbers must follow each other without a gap, and every frame must have the first
frame's size. A sequence has no frame rate of its own: ``--fps`` gives it (25 when it is
not needed, e.g. sequence to sequence). Problems are one-sentence :class:`InputError`\\ s,
raised while listing (before the model loads) or, for a frame that differs from the
first, when that frame is read (the output is then never published).
"""

from __future__ import annotations

import glob
import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np
import torch

from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.io.color import ColorSpec
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.reader import Frame, ReadStats, frame_to_rgb

log = logging.getLogger(__name__)

OPENCV_FORMATS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")  # read by OpenCV (PNG, TIFF: 8 and 16 bits)
FFMPEG_FORMATS = (".dpx", ".exr")  # read through PyAV's image decoders
IMAGE_FORMATS = OPENCV_FORMATS + FFMPEG_FORMATS
DEFAULT_FPS = Fraction(25)  # timestamps of a sequence read without --fps
_PRINTF = re.compile(r"%(0?)(\d*)d")
_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits


@dataclass(frozen=True)
class ImageSequence:
    """A listed image sequence: its files in frame order and their numbers."""

    where: str  # as the user wrote it (folder, pattern or glob)
    folder: Path  # the folder holding the files
    files: tuple[Path, ...]  # in frame order
    first: int  # frame number of files[0]; files[i] is frame first + i

    @property
    def numbers(self) -> range:
        """The frame numbers, in order."""
        return range(self.first, self.first + len(self.files))


def is_pattern(path: Path | str) -> bool:
    """True when ``path``'s name is a printf pattern (``%06d``) or a glob (``*``, ``?``, ``[``)."""
    name = Path(path).name
    return bool(_PRINTF.search(name)) or any(c in name for c in "*?[")


def is_sequence_input(path: Path | str) -> bool:
    """True when ``path`` names an image sequence: a folder, or a pattern with an image extension."""
    path = Path(path)
    if is_pattern(path):
        return path.suffix.lower() in IMAGE_FORMATS or "*" in path.suffix
    return path.is_dir()


def list_sequence(where: Path | str) -> ImageSequence:
    """List the sequence at ``where`` (folder, printf pattern or glob); InputError when it is not one clean run."""
    where = Path(where)
    text = str(where)
    if where.is_dir() and not is_pattern(where):
        folder = where
        names = [p for p in where.iterdir() if p.suffix.lower() in IMAGE_FORMATS and not p.name.startswith(".")]
        what = f"Folder {text!r}"
        if not names:
            raise InputError(f"{what} holds no image files ({', '.join(IMAGE_FORMATS)}); give a folder of numbered frames (for a folder of videos, use vsrpipe batch).")
    else:
        folder = where.parent
        if not folder.is_dir():
            raise InputError(f"The folder of image sequence {text!r} does not exist.")
        if any(c in str(folder) for c in "*?[") or _PRINTF.search(str(folder)):
            raise InputError(f"Image sequence {text!r} has a pattern in its folder name; only the file name may be a pattern.")
        names = _matching(where)
        what = f"Image sequence {text!r}"
        if not names:
            raise InputError(f"{what} matches no files; check the folder and the pattern (e.g. frames/%06d.png).")
        if where.suffix.lower() not in IMAGE_FORMATS and not all(p.suffix.lower() in IMAGE_FORMATS for p in names):
            raise InputError(f"{what} matches files that are not images vsrpipe reads ({', '.join(IMAGE_FORMATS)}).")
    return _one_run(what, text, folder, names)


def _matching(pattern: Path) -> list[Path]:
    """The files a printf pattern or a glob names."""
    name = pattern.name
    m = _PRINTF.search(name)
    if m is None:
        return [Path(p) for p in glob.glob(glob.escape(str(pattern.parent)) + "/" + name) if Path(p).is_file()]
    if len(_PRINTF.findall(name)) > 1:
        raise InputError(f"Image sequence {str(pattern)!r} has more than one %d in its name; use one.")
    width = int(m.group(2) or 0) if m.group(1) else 0
    rx = re.compile(re.escape(name[: m.start()]) + r"(\d+)" + re.escape(name[m.end():]) + "$")
    found = []
    for p in pattern.parent.iterdir():
        hit = rx.match(p.name)
        if hit is None or not p.is_file():
            continue
        digits = hit.group(1)
        if digits == (f"%0{width}d" % int(digits) if width else str(int(digits))):  # %06d: 000012, not 12 or 0000012
            found.append(p)
    return found


def _one_run(what: str, text: str, folder: Path, files: list[Path]) -> ImageSequence:
    """Check that ``files`` are one gapless run of one format and one name shape; order them by number."""
    exts = sorted({p.suffix.lower() for p in files})
    if len(exts) > 1:
        raise InputError(f"{what} mixes image formats ({', '.join(exts)}); give a pattern such as {text.rstrip('/')}/%06d{exts[0]}.")
    by_shape: dict[tuple[str, str], dict[int, Path]] = {}
    for p in files:
        m = _NUMBER.search(p.stem)
        if m is None:
            raise InputError(f"{what} holds {p.name!r}, which has no frame number; every frame's name must end in its number.")
        shape = (p.stem[: m.start()], p.stem[m.end():] + p.suffix)
        numbers = by_shape.setdefault(shape, {})
        n = int(m.group(1))
        if n in numbers:
            raise InputError(f"{what} holds frame {n} twice ({numbers[n].name!r} and {p.name!r}); keep one.")
        numbers[n] = p
    if len(by_shape) > 1:
        shapes = sorted(f"{a}#{b}" for a, b in by_shape)
        raise InputError(f"{what} holds more than one sequence ({', '.join(shapes[:3])}); name one with a pattern such as {folder}/{shapes[0].replace('#', '%06d')}.")
    numbers = next(iter(by_shape.values()))
    order = sorted(numbers)
    for a, b in zip(order, order[1:]):
        if b != a + 1:
            gap = f"frame {a + 1}" if b == a + 2 else f"frames {a + 1} to {b - 1}"
            raise InputError(f"{what} is missing {gap} (it has {numbers[a].name!r} and then {numbers[b].name!r}); restore the missing frames or process the runs separately.")
    return ImageSequence(where=text, folder=folder, files=tuple(numbers[n] for n in order), first=order[0])


def read_image(path: Path) -> tuple[torch.Tensor, int]:
    """One image file as RGB float32 (3, H, W) in [0, 1] and its bits per sample (8, 16, or 32 for float)."""
    if path.suffix.lower() in FFMPEG_FORMATS:
        return _read_ffmpeg(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"Image {str(path)!r} cannot be read ({exc.strerror}).") from exc
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if arr is None:
        raise InputError(f"Image {str(path)!r} is not a picture OpenCV can read (damaged or empty?).")
    if arr.dtype == np.uint8:
        bits, scale = 8, 255.0
    elif arr.dtype == np.uint16:
        bits, scale = 16, 65535.0
    elif arr.dtype == np.float32:
        bits, scale = 32, 1.0
    else:
        raise InputError(f"Image {str(path)!r} has {arr.dtype} samples; vsrpipe reads 8- and 16-bit images.")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[..., :3]  # alpha is not upscaled
    elif arr.shape[2] != 3:
        raise InputError(f"Image {str(path)!r} has {arr.shape[2]} channels; vsrpipe reads grey, RGB and RGBA images.")
    rgb = np.ascontiguousarray(arr[..., ::-1].transpose(2, 0, 1))  # OpenCV's BGR -> (3, H, W) RGB
    return torch.from_numpy(rgb.astype(np.float32) / scale), bits


def _read_ffmpeg(path: Path) -> tuple[torch.Tensor, int]:
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise InputError(f"Image {str(path)!r} is not a picture FFmpeg can read ({exc}).") from exc
    depth = max(c.bits for c in frame.format.components)
    if frame.format.name in ("gbrpf32le", "gbrapf32le"):  # EXR: float samples as they are (linear light), clipped to [0, 1]
        g, b, r = (np.frombuffer(p, np.float32).reshape(p.height, p.line_size // 4)[:, : frame.width] for p in frame.planes[:3])
        return torch.from_numpy(np.stack([r, g, b])).clamp(0, 1), 32
    return frame_to_rgb(frame, ColorSpec(full_range=True, bit_depth=min(depth, 16))).float(), depth


def probe_sequence(where: Path | str, fps: float | None = None) -> VideoInfo:
    """List and describe the sequence at ``where``; ``fps`` is its frame rate (None: 25, for timestamps only).

    The returned :class:`VideoInfo` carries the listing in its ``sequence`` field.
    """
    seq = list_sequence(where)
    rate = frame_rate(fps) if fps is not None else DEFAULT_FPS
    rgb, bits = read_image(seq.files[0])
    h, w = rgb.shape[-2:]
    n = len(seq.files)
    depth = min(bits, 16)
    return VideoInfo(
        path=Path(where), container="image sequence", width=w, height=h, fps=rate, time_base=1 / rate,
        duration=n / float(rate), video_duration=n / float(rate), frame_count=n,
        pix_fmt="rgb24" if bits <= 8 else "rgb48le", bit_depth=bits,
        color=ColorSpec(matrix="bt709", full_range=False, bit_depth=depth),  # how a video made from it is encoded
        color_primaries=2, color_trc=2, color_tagged=False, rotation=0, codec=seq.files[0].suffix.lower().lstrip("."),
        sequence=seq,
    )


def frame_rate(fps: float) -> Fraction:
    """``--fps`` as an exact rate (23.976 -> 2997/125, 24000/1001 given as 23.976023976 stays NTSC)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"--fps must be a positive number, got {fps:g}.")
    return Fraction(fps).limit_denominator(1001)


class SequenceReader:
    """Iterate over an image sequence as :class:`Frame` objects (the video reader's interface).

    ``start``/``duration`` (seconds, at the sequence's rate) select a section exactly as
    for a video; :attr:`first_number` is then the number of the section's first frame,
    which a sequence sink continues from. Timestamps count frames from 0.
    """

    trailing_packets: tuple = ()  # a sequence has no side streams

    def __init__(self, info: VideoInfo, *, start: float | None = None, duration: float | None = None) -> None:
        self.info = info
        self.seq: ImageSequence = info.sequence
        rate = info.fps
        first = math.ceil((start or 0) * rate - 1e-6)
        stop = len(self.seq.files) if duration is None else min(len(self.seq.files), math.ceil(((start or 0) + duration) * rate - 1e-6))
        if start and first >= len(self.seq.files):
            raise InputError(f"Image sequence {self.seq.where!r} has no frames after --start {start:g} s (at {float(rate):g} fps).")
        self.range = range(first, stop)
        self.first_number = self.seq.first + first
        self.stats = ReadStats(expected=len(self.range))
        self.side_streams: tuple[int, ...] = ()

    @property
    def section(self) -> tuple[float, float | None]:
        """(start, duration) in seconds of what is read."""
        return float(self.range.start / self.info.fps), None

    def __iter__(self) -> Iterator[Frame]:
        w, h = self.info.width, self.info.height
        for index, i in enumerate(self.range):
            path = self.seq.files[i]
            rgb, bits = read_image(path)
            if tuple(rgb.shape[-2:]) != (h, w):
                raise InputError(
                    f"Image {str(path)!r} is {rgb.shape[-1]}x{rgb.shape[-2]} but the sequence's first frame is {w}x{h}; every frame must have one size."
                )
            if (bits > 8) != (self.info.bit_depth > 8):
                log.warning("%s has %d-bit samples, the first frame %d-bit", path, bits, self.info.bit_depth)
            self.stats.decoded = index + 1
            yield Frame(index=index, pts=index, time_base=self.info.time_base, rgb=rgb, duration=1)

    def close(self) -> None:
        """Nothing to stop: frames are read as they are asked for."""


def refuse_resume(src: Path | str, dst: Path | str, fps: float | None) -> None:
    """ConfigError when ``--resume`` is asked for an image sequence made into a video.

    A video is resumed in segments and a sequence output frame by frame; a video made
    from a sequence is neither (its segments could not be joined with the input's streams).
    """
    from vsr_pipeline.io.sequence_sink import is_sequence_output

    if not is_sequence_output(dst) and (fps is not None or is_sequence_input(src)):
        raise ConfigError(
            "--resume works on video files and on image-sequence outputs, not on a video made from an image sequence; "
            "run without --resume (the video still appears only when complete)."
        )
