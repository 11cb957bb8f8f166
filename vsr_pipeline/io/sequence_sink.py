"""Image sequences as a sink: ``out/%06d.png`` (``.tif``, ``.dpx``: 8 or 16 bits; ``.exr``: float), numbered like the input.

Atomic as the video writer is: the frames go into a hidden temporary folder and appear
only when the last one is written — the whole folder renamed into place when ``out/``
did not exist, else each finished file renamed into ``out/`` (a publish that fails part-way moves the
frames it had published back). A failed or interrupted run removes the temporary folder
and leaves no frame of its own at the output path (a resumable run's ``out/`` stays: it
holds the hidden staging folder). Numbering continues
the input sequence's (a section's first frame keeps its number); a video's frames are
numbered from 1, as FFmpeg numbers them.

Resumable runs (``--resume``, ``vsrpipe batch``) stage the frames in a durable folder of
their own (:class:`Staging`) instead: it survives a failure or a kill, and a rerun keeps
the frames found there (:func:`staged_frames`) and writes only the rest. Every frame is
written to a hidden ``.partial`` file, fsynced and only then renamed to its frame name,
so a frame name never holds half a frame, in the staging folder or at the output.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np
import torch

from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.errors import ConfigError, OutputError
from vsr_pipeline.io.files import describe_os_error, publish, publish_dir, temp_dir_for
from vsr_pipeline.io.probe import VideoInfo
from vsr_pipeline.io.sink import SinkContext

log = logging.getLogger(__name__)

SINK_FORMATS = (".png", ".tif", ".tiff", ".dpx", ".exr")  # PNG/TIFF through OpenCV (8/16-bit), DPX (8/16-bit) and EXR (float) through PyAV
_AV_CODECS = {".dpx": "dpx", ".exr": "exr"}
_PRINTF = re.compile(r"%(0\d+)?d")
_DEPTHS = {"rgb24": 8, "rgb48le": 16, "rgb48": 16}  # --pix-fmt for a sequence
_VIDEO_ONLY = ("backend", "codec", "crf", "preset", "encoder_args", "ffmpeg_path")  # EncodeOptions a sequence has no use for


_PICTURES = SINK_FORMATS + (".jpg", ".jpeg", ".bmp", ".webp", ".gif")  # a pattern with these is meant as a sequence


def is_sequence_output(path: Path | str) -> bool:
    """True when ``path`` is a numbered image pattern such as ``out/%06d.png`` (``100%done.mp4`` is a video)."""
    path = Path(path)
    return bool(_PRINTF.search(path.name)) and path.suffix.lower() in _PICTURES


@dataclass(frozen=True)
class SequencePlan:
    """What a sequence sink writes (the fields the drivers read from a video writer's plan)."""

    codec: str  # "png" or "tiff"
    pix_fmt: str  # "rgb24" or "rgb48le"
    width: int
    height: int
    side_streams: tuple[int, ...] = ()  # a sequence holds no audio or subtitles


def check_sequence_output(dst: Path | str, overwrite: bool, *, source_folder: Path | None = None) -> None:
    """Refuse a bad output pattern, a folder that is a file or the input's, or (without ``overwrite``) one holding frames.

    Raises :class:`OutputError` (one sentence) or :class:`ConfigError` for the pattern itself.
    """
    dst = Path(dst)
    name = dst.name
    if len(_PRINTF.findall(name)) != 1 or any(c in name for c in "*?["):
        raise ConfigError(f"Output {str(dst)!r} must have exactly one %d in its name, e.g. out/%06d.png.")
    if dst.suffix.lower() not in SINK_FORMATS:
        raise ConfigError(f"Output {str(dst)!r} must end in {', '.join(SINK_FORMATS)} to write an image sequence.")
    folder = dst.parent
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputError(f"Output folder {str(folder)!r} is a file; choose a folder for the frames.")
    if source_folder is not None and folder.exists() and folder.resolve() == Path(source_folder).resolve():
        raise OutputError(f"Output {str(dst)!r} is in the input sequence's folder; write the frames to another folder.")
    if folder.is_dir():
        existing = existing_frames(dst)
        if existing and not overwrite:
            raise OutputError(
                f"Output folder {str(folder)!r} already holds frames named like {name!r} (e.g. {existing[0]!r}); "
                "pass --overwrite to replace them or choose another folder."
            )
        if not os.access(folder, os.W_OK):
            raise OutputError(f"Output folder {str(folder)!r} is not writable.")
    elif not folder.parent.is_dir():
        raise OutputError(f"The folder {str(folder.parent)!r} that would hold output folder {folder.name!r} does not exist.")
    elif not os.access(folder.parent, os.W_OK):
        raise OutputError(f"Output folder {str(folder)!r} cannot be created: {str(folder.parent)!r} is not writable.")


def existing_frames(dst: Path | str) -> list[str]:
    """The names in ``dst``'s folder that fit its pattern (``%06d.png``: ``000001.png``, ...), sorted."""
    dst = Path(dst)
    if not dst.parent.is_dir():
        return []
    m = _PRINTF.search(dst.name)
    rx = re.compile(re.escape(dst.name[: m.start()]) + r"\d+" + re.escape(dst.name[m.end():]) + "$")
    return sorted(n for n in os.listdir(dst.parent) if rx.match(n))


def pattern_like(first_frame: Path | str, suffix: str) -> str:
    """An output pattern named like an input sequence's first frame: ``shot_0001.tif``, ``.png`` -> ``shot_%04d.png``.

    Zero-padded numbers keep their width, others are ``%d``; a name with a ``%`` of its
    own gets ``%06d``. ``suffix`` must be one of :data:`SINK_FORMATS`.
    """
    stem = Path(first_frame).stem
    m = re.search(r"(\d+)(?!.*\d)", stem)
    if m is None or "%" in stem:
        return f"%06d{suffix}"
    digits = m.group(1)
    spec = f"%0{len(digits)}d" if len(digits) > 1 and digits.startswith("0") else "%d"
    return stem[: m.start()] + spec + stem[m.end():] + suffix


def frame_name(dst: Path | str, n: int) -> str:
    """The file name of frame number ``n`` of the output pattern ``dst`` (``%06d.png``, 7: ``000007.png``)."""
    return _PRINTF.sub(lambda m: f"%{m.group(1) or ''}d" % n, Path(dst).name, count=1)


def staged_frames(folder: Path | str, dst: Path | str, first_number: int) -> int:
    """How many frames of ``dst`` an earlier run left in the staging ``folder``: the unbroken run from ``first_number``.

    Frames are staged in order, each renamed into place only when complete, so what is
    there is a prefix of the output; anything after a missing number is written again.
    """
    folder = Path(folder)
    n = 0
    while (folder / frame_name(dst, first_number + n)).is_file():
        n += 1
    return n


@dataclass(frozen=True)
class Staging:
    """Where a resumable run stages a sequence output's frames, and what an earlier run left there.

    The folder is the caller's, named for the run's settings and input (an interrupted
    run with other settings stages elsewhere, so its frames are never mixed in); it is
    kept when the run fails or is killed, and emptied into the output when it succeeds.
    """

    folder: Path
    done: int = 0  # frames already staged (from :func:`staged_frames`): not written again
    after_frame: Callable[[int], None] | None = None  # called with the count of staged frames after each one (tests)


class SequenceWriter(SinkContext):
    """Write RGB frames (3, H, W) as numbered images; the video writer's interface (open, write, close, abort).

    PNG, TIFF and DPX get 16 bits per sample when the input has more than 8 (``--pix-fmt``
    rgb24 / rgb48le chooses), EXR 32-bit float;
    ``first_number`` is the number of the first frame written. With ``staging`` the frames
    are written into its durable folder, the first ``staging.done`` of them are taken as
    already there (what :meth:`write` gets for them is not written), and :meth:`abort`
    keeps the folder for the next run.
    """

    def __init__(
        self, path: Path | str, info: VideoInfo, size: tuple[int, int], options: EncodeOptions = EncodeOptions(),
        *, replace: bool = True, first_number: int = 1, staging: Staging | None = None,
    ) -> None:
        self.path = Path(path)
        self.staging = staging
        self.replace = replace
        defaults = EncodeOptions()
        for f in fields(EncodeOptions):
            if f.name in _VIDEO_ONLY and getattr(options, f.name) != getattr(defaults, f.name):
                flag = "--" + f.name.replace("_", "-")
                raise ConfigError(f"{flag} applies to video output, not to the image sequence {str(self.path)!r}; drop it.")
        if options.pix_fmt is not None and options.pix_fmt not in _DEPTHS:
            raise ConfigError(f"--pix-fmt for an image sequence is rgb24 (8-bit) or rgb48le (16-bit), got {options.pix_fmt!r}.")
        suffix = self.path.suffix.lower()
        bits = _DEPTHS[options.pix_fmt] if options.pix_fmt else (16 if info.bit_depth > 8 else 8)
        if suffix == ".exr":
            if options.pix_fmt is not None:
                raise ConfigError(f"--pix-fmt does not apply to EXR output {str(self.path)!r}: it is written as 32-bit float.")
            bits = 32
        codec = _AV_CODECS.get(suffix) or ("png" if suffix == ".png" else "tiff")
        pix_fmt = {8: "rgb24", 16: "rgb48le", 32: "gbrpf32le"}[bits]
        self.plan = SequencePlan(codec=codec, pix_fmt=pix_fmt, width=size[0], height=size[1])
        self.bits = bits
        self.first_number = first_number
        self.tmp: Path | None = None
        self.frames_written = 0
        self._whole = False  # True: the temporary folder becomes the output folder
        self._names: list[str] = []

    def open(self, *, section: tuple[float, float | None] = (0.0, None)) -> None:
        """Create the hidden temporary folder, or the staging folder (``section`` is accepted for the video writer's sake)."""
        folder = self.path.parent
        self._whole = not folder.exists()
        if self.staging is None:
            self.tmp = temp_dir_for(folder if self._whole else folder / "frames")
            return
        tmp = Path(self.staging.folder)
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            for stale in tmp.glob(".*.partial"):
                stale.unlink()  # a frame a killed run had not finished
        except OSError as exc:
            raise OutputError(f"Could not create the staging folder {str(tmp)!r}: {describe_os_error(exc)}.") from exc
        if staged_frames(tmp, self.path, self.first_number) < self.staging.done:
            raise OutputError(f"Frames staged in {str(tmp)!r} went missing during the run; run again to redo them.")
        self.tmp = tmp

    def name(self, n: int) -> str:
        """The file name of frame number ``n``."""
        return frame_name(self.path, n)

    def write(self, rgb: torch.Tensor, pts: int = 0, time_base: Fraction | None = None, side_packets: list = ()) -> None:
        """Write the next frame: ``rgb`` (3, H, W) float in [0, 1] (timestamps and side packets are not kept)."""
        assert self.tmp is not None, "SequenceWriter.open() first"
        name = self.name(self.first_number + self.frames_written)
        if self.staging is not None and self.frames_written < self.staging.done:
            self._names.append(name)  # staged by an earlier run: kept as it is
            self.frames_written += 1
            return
        if tuple(rgb.shape[-2:]) != (self.plan.height, self.plan.width):
            raise ValueError(f"frame is {tuple(rgb.shape)}, writer expects 3x{self.plan.height}x{self.plan.width}")
        data = self._encode(rgb.detach().float().clamp(0, 1).cpu().numpy())  # (3, H, W)
        partial = self.tmp / f".{name}.partial"
        try:
            with open(partial, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(partial, self.tmp / name)  # the frame's name only ever holds a whole frame
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise OutputError(f"Could not write {str(self.path.parent / name)!r}: {describe_os_error(exc)}.") from exc
        self._names.append(name)
        self.frames_written += 1
        if self.staging is not None and self.staging.after_frame is not None:
            self.staging.after_frame(self.frames_written)

    def _encode(self, rgb: np.ndarray) -> bytes:
        """One frame (3, H, W) float in [0, 1] as the bytes of an image file."""
        if self.plan.codec == "exr":
            planes = [rgb[1], rgb[2], rgb[0]]  # G, B, R
            frame = av.VideoFrame(self.plan.width, self.plan.height, "gbrpf32le")
            for dst, src in zip(frame.planes, planes):
                row = np.zeros((src.shape[0], dst.line_size // 4), np.float32)
                row[:, : src.shape[1]] = src
                dst.update(row.tobytes())
            return _encode_av("exr", frame)
        maxval = (1 << self.bits) - 1
        q = (rgb * maxval).round().astype(np.uint8 if self.bits == 8 else np.uint16).transpose(1, 2, 0)  # (H, W, 3) RGB
        if self.plan.codec == "dpx":
            return _encode_av("dpx", av.VideoFrame.from_ndarray(np.ascontiguousarray(q), format=self.plan.pix_fmt))
        ok, data = cv2.imencode(self.path.suffix.lower(), np.ascontiguousarray(q[..., ::-1]))  # OpenCV wants BGR
        if not ok:
            raise OutputError(f"OpenCV could not encode frame {self.frames_written} of {str(self.path)!r}.")
        return data.tobytes()

    def close(self, trailing_packets: list = ()) -> Path:
        """Publish the frames (all at once where the output folder is new); returns the output folder."""
        assert self.tmp is not None
        folder = self.path.parent
        published: list[str] = []
        try:
            try:
                if not (self._whole and publish_dir(self.tmp, folder)):
                    folder.mkdir(exist_ok=True)
                    for name in self._names:  # each file appears complete; the temporary folder goes last
                        publish(self.tmp / name, folder / name, replace=self.replace)
                        published.append(name)
                    self.tmp.rmdir()
                    self._warn_older()
            except OSError as exc:
                raise OutputError(f"Could not write {str(self.path)!r}: {describe_os_error(exc)}.") from exc
        except BaseException:
            self._take_back(published)
            self.abort()
            raise
        self.tmp = None
        return folder

    def _take_back(self, names: list[str]) -> None:
        """Move frames this close had published back into the temporary folder: a failed publish leaves no part
        of the run at the output (with a staging folder they stay staged for the next run)."""
        for name in reversed(names):
            try:
                os.replace(self.path.parent / name, self.tmp / name)
            except OSError:
                log.warning("could not take back %s after a failed publish", self.path.parent / name)

    def _warn_older(self) -> None:
        """Frames of the same name shape that this run did not write (an earlier, longer run's) are kept: say so."""
        older = sorted(set(existing_frames(self.path)) - set(self._names))
        if older:
            log.warning(
                "%s also holds %d frame(s) named like %s that this run did not write (e.g. %s); they were left as they are",
                self.path.parent, len(older), self.path.name, older[0],
            )

    def abort(self) -> None:
        """Delete the temporary folder and what it holds (a staging folder keeps its frames); the output path is untouched."""
        if self.tmp is not None and self.staging is not None:
            for partial in self.tmp.glob(".*.partial"):
                partial.unlink(missing_ok=True)
            self.tmp = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.tmp.exists():
                log.warning("could not remove temporary folder %s", self.tmp)
            self.tmp = None


def _encode_av(codec: str, frame: av.VideoFrame) -> bytes:
    """``frame`` encoded as one picture by FFmpeg's ``codec`` (dpx, exr): the bytes of the image file."""
    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = frame.width, frame.height, frame.format.name
    cc.time_base = Fraction(1, 25)
    return b"".join(bytes(p) for p in (*cc.encode(frame), *cc.encode(None)))
