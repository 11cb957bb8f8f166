"""The sink protocol (what every writer offers the drivers) and the ``with`` behaviour they share."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    """Frames in, one file (or one numbered set of files) out, published only by :meth:`close`."""

    plan: object  # what is written: codec, pix_fmt, width, height, side_streams kept
    tmp: Path | None  # the temporary file or folder while open
    frames_written: int

    def open(self, *, section: tuple[float, float | None] = (0.0, None)) -> None: ...

    def write(self, rgb, pts: int, time_base: Fraction, side_packets: list = ()) -> None: ...

    def close(self, trailing_packets: list = ()) -> Path: ...

    def abort(self) -> None: ...


class SinkContext:
    """``with sink:`` opens it, and on leaving closes it (publishes) or, after an exception, aborts it."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
