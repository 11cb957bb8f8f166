"""``source(path)``: a file or an image sequence as a VapourSynth clip, read by vsrpipe's own sources.

The frames are exactly what ``vsrpipe enhance`` sees (our colour conversion, rotation
applied), as RGBS; each frame carries ``_DurationNum``/``_DurationDen`` from its own
timestamps (VFR durations kept), ``_AbsoluteTime`` and ``_Matrix``/``_Range`` of RGB.
Frames are decoded in order; a request behind the decoder restarts it from the start, so
scrubbing backwards in an editor is slow — BestSource (``core.bs.VideoSource``) is the
better choice for editing. An image sequence (a folder, ``frames/%06d.png``, ``frames/*.tif``;
see :mod:`vsr_pipeline.io.sequence`) is read at ``fps`` (default 25).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsr_pipeline.errors import VsrError

core = vs.core
CACHE = 8  # decoded frames kept for requests slightly out of order


def source(path: str | Path, *, fps: float | None = None) -> vs.VideoNode:
    """The video (or image sequence) ``path`` as an RGBS clip (see the module doc). Raises ``vs.Error("source: …")``.

    ``fps``: an image sequence's frame rate (a video has its own; giving one is an error).
    """
    from vsr_pipeline.io.source import frame_count, is_sequence_input, probe_source

    path = Path(path)
    try:
        if not path.exists() and not is_sequence_input(path):
            raise vs.Error(f"source: {str(path)!r} does not exist.")
        info = probe_source(path, fps=fps)
        count = frame_count(path, info)
    except VsrError as exc:
        raise vs.Error(f"source: {exc}") from None
    if count == 0:
        raise vs.Error(f"source: {str(path)!r} holds no video frames.")
    w, h = info.display_size
    fps = Fraction(info.fps or 25).limit_denominator(1_000_000)
    blank = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=count, fpsnum=fps.numerator, fpsden=fps.denominator)
    reader = _Sequential(path, fps, info)
    return core.std.ModifyFrame(blank, blank, reader.frame)


class _Sequential:
    """Frames of one file in order, with a small cache; thread-safe."""

    def __init__(self, path: Path, fps: Fraction, info) -> None:
        self.path, self.fps, self.info = path, fps, info
        self.lock = threading.Lock()
        self.cache: OrderedDict[int, tuple] = OrderedDict()
        self.it = None
        self.pending = None  # the frame decoded one ahead (its pts gives the previous one's duration)

    def _restart(self) -> None:
        from vsr_pipeline.io.source import open_source

        if self.it is not None and hasattr(self.it, "close"):
            self.it.close()  # stops the old decode thread
        self.it = iter(open_source(self.path, self.info))
        self.pending = next(self.it, None)

    def _advance(self) -> bool:
        """Decode one more frame into the cache; False at the end."""
        cur = self.pending
        if cur is None:
            return False
        self.pending = next(self.it, None)
        if self.pending is not None:
            duration = Fraction(self.pending.pts - cur.pts) * cur.time_base
        elif cur.duration:
            duration = Fraction(cur.duration) * cur.time_base
        else:
            duration = 1 / self.fps
        self.cache[cur.index] = (cur.rgb.numpy(), duration, Fraction(cur.pts) * cur.time_base)
        while len(self.cache) > CACHE:
            self.cache.popitem(last=False)
        return True

    def _get(self, n: int) -> tuple:
        with self.lock:
            if n in self.cache:
                return self.cache[n]
            if self.it is None or (self.cache and n < next(iter(self.cache))) or (not self.cache and self.pending is None):
                self._restart()
                self.cache.clear()
            while n not in self.cache:
                if not self._advance():
                    raise vs.Error(f"source: frame {n} is past the end of {str(self.path)!r}.")
            return self.cache[n]

    def frame(self, n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        rgb, duration, time = self._get(n)
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        duration = Fraction(duration).limit_denominator(1_000_000)
        out.props["_DurationNum"], out.props["_DurationDen"] = duration.numerator, duration.denominator
        out.props["_AbsoluteTime"] = float(time)
        out.props["_Matrix"], out.props["_Range"] = 0, 1
        return out
