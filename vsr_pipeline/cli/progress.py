"""Progress of a long command: a bar on a terminal, a log line every few seconds elsewhere, or JSON lines.

``--progress`` picks the form:

- ``auto`` (default): the bar when stderr is a terminal, else a log line on stderr every
  :data:`LOG_EVERY` seconds (frames, fps, ETA), so CI logs and ``nohup`` runs show life;
- ``bar`` / ``log``: that form whatever stderr is;
- ``json``: one JSON object per line on stdout, ``{"frames", "total", "fps", "eta"}``, at
  most every :data:`JSON_EVERY` seconds plus a final line, for wrappers and GUIs;
- ``none``: nothing.

``--quiet`` silences ``auto``, ``bar`` and ``log``; an explicit ``--progress json`` still prints.
"""

from __future__ import annotations

import json
import sys
import time

import click

PROGRESS_MODES = ("auto", "bar", "log", "json", "none")
LOG_EVERY = 5.0  # seconds between log lines when stderr is not a terminal
JSON_EVERY = 0.5  # seconds between JSON lines


class _Rate:
    """Frames, total, fps and ETA from the calls ``update(done, expected)``."""

    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None
        self.t_first: float | None = None  # when the first frame was done (model loading is not counted)
        self.done_first = 0

    def update(self, done: int, expected: int | None) -> None:
        if expected:
            self.total = expected
        if done > 0 and self.t_first is None:
            self.t_first, self.done_first = time.monotonic(), done
        self.done = done

    @property
    def fps(self) -> float:
        if self.t_first is None or self.done <= self.done_first:
            return 0.0
        elapsed = time.monotonic() - self.t_first
        return (self.done - self.done_first) / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        fps = self.fps
        if self.total is None or fps <= 0:
            return None
        return max(0.0, (self.total - self.done) / fps)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _LogLines:
    """A line on stderr every ``every`` seconds: ``progress: 120/300 frames (40%), 2.10 fps, ETA 1:26``."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.rate, self.every, self.last = _Rate(), every, time.monotonic()

    def update(self, done: int, expected: int | None) -> None:
        self.rate.update(done, expected)
        now = time.monotonic()
        if now - self.last >= self.every and done:
            self.last = now
            r = self.rate
            of = f"/{r.total} frames ({100 * done / r.total:.0f}%)" if r.total else " frames"
            fps = f"{r.fps:.2f} fps" if r.fps > 0 else "? fps"
            click.echo(f"progress: {done}{of}, {fps}, ETA {_clock(r.eta)}", err=True)

    def close(self) -> None:
        pass


class _JsonLines:
    """One JSON object per line on stdout: frames, total, fps, eta (seconds or null)."""

    def __init__(self, every: float = JSON_EVERY) -> None:
        self.rate, self.every, self.last = _Rate(), every, None

    def _emit(self) -> None:
        r = self.rate
        eta = r.eta
        line = {"frames": r.done, "total": r.total, "fps": round(r.fps, 3), "eta": None if eta is None else round(eta, 1)}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        self.last = time.monotonic()

    def update(self, done: int, expected: int | None) -> None:
        self.rate.update(done, expected)
        if self.last is None or time.monotonic() - self.last >= self.every:
            self._emit()

    def close(self) -> None:
        if self.last is not None:
            self._emit()  # the final count


class _Bar:
    """A tqdm bar with fps and ETA that knows the total as soon as the driver does."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(unit="frame", dynamic_ncols=True, leave=False, smoothing=0.1)

    def update(self, done: int, expected: int | None) -> None:
        bar = self.bar
        if expected and bar.total != expected:
            bar.total = expected
            bar.refresh()
        bar.update(done - bar.n)

    def close(self) -> None:
        self.bar.close()


def progress_bar(quiet: bool, mode: str = "auto"):
    """(reporter, update) for ``mode`` (see the module), or (None, None) when nothing is to be shown.

    ``update(done, expected)`` is the driver's progress callback; call ``reporter.close()`` at the end.
    """
    if mode not in PROGRESS_MODES:
        raise click.BadParameter(f"--progress must be one of {', '.join(PROGRESS_MODES)}, got {mode!r}.")
    if mode == "json":
        reporter = _JsonLines()
    elif quiet or mode == "none":
        return None, None
    elif mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        reporter = _Bar()
    else:
        reporter = _LogLines()
    return reporter, reporter.update
