"""How a file driver encodes its output: the I/O settings, here below everything that reads them.

``vsr_pipeline.config`` re-exports :class:`EncodeOptions` for the CLI and the API; io/
itself imports nothing above it (the adaptation registry included).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode the output; click options map onto these fields."""

    backend: str = "pyav"  # "pyav" (in process) or "ffmpeg" (external binary via ffmpeg-python)
    codec: str | None = None  # encoder name or alias; None: by container (libx264, webm: libvpx-vp9)
    crf: int | None = None  # constant rate factor; None: the encoder's entry in DEFAULT_CRF
    preset: str | None = None  # encoder preset; None: DEFAULT_PRESET
    pix_fmt: str | None = None  # None: yuv420p for 8-bit input, yuv420p10le for deeper input (rgb48le for 16-bit image sequences)
    encoder_args: str = ""  # extra encoder/muxer options, e.g. "-tune film -x264-params aq-mode=3"; unknown ones are refused
    copy_audio: bool = True  # copy audio streams without re-encoding
    copy_subtitles: bool = True  # copy subtitle streams without re-encoding
    ffmpeg_path: str | None = None  # ffmpeg backend: binary to run; None: PATH, then imageio-ffmpeg's
