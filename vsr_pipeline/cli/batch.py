"""``vsrpipe batch``: upscale a folder of footage (videos, image-sequence folders) into a mirrored folder, resumably, locally or on Ray."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from vsr_pipeline.cli.common import PROGRESS_MODES, fps_option
from vsr_pipeline.cli.progress import _clock
from vsr_pipeline.cli.enhance import SECTIONS, enhance_options
from vsr_pipeline.cli.help import SectionedCommand

PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


BATCH_SECTIONS = {
    "Folders and engine": ["patterns", "recursive", "jobs", "engine", "address", "ext", "retry_failed", "as_json"],
    **SECTIONS,
}


@click.command(cls=SectionedCommand, sections=BATCH_SECTIONS)
@click.argument("in_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--pattern", "patterns", multiple=True, help="Only files (and sequence folders) whose name or path under IN_DIR matches this glob; repeatable.  [default: every common video extension, and every folder holding only images]")
@click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders; the output tree mirrors them.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Files or segments worked on at once (worker processes, or Ray actors); each keeps its model loaded.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Run on this machine, or on a Ray cluster (pip install 'vsr-pipeline[ray]').")
@click.option("--address", default=None, help="--engine ray: address of a running cluster (ray start --head prints it); without it a local Ray instance is started, on 127.0.0.1 only. A cluster that does not answer within VSRPIPE_RAY_CONNECT_TIMEOUT seconds (default 10) or refuses this driver is exit 4.")
@click.option("--ext", default=None, help="Output extension: a video (mp4, mkv, mov, webm) or an image sequence (png, tif, dpx, exr: a folder of frames).  [default: the input's; a sequence of JPEG/BMP frames: png]")
@fps_option("input", "needed to make videos of sequence folders (--ext mkv); videos keep their own")
@click.option("--retry-failed", is_flag=True, help="Redo files that failed in an earlier run (otherwise they stay failed).")
@click.option("--segment-frames", type=int, default=1000, show_default=True, help="A file longer than this is done in resumable segments of about this many frames (cut at scene cuts, or at any frame without --adapt); 0: whole files only.")
@click.option("--json", "as_json", is_flag=True, help="Print the batch report as JSON instead of the table.")
@click.option("--progress", "progress_mode", type=click.Choice(PROGRESS_MODES), default="auto", show_default=True, help="auto: a bar on a terminal, else a log line every 10 s (files, frames, fps, ETA); bar; log; json: one JSON object per line on stderr; none.")
@enhance_options
def batch(
    in_dir: Path, out_dir: Path, patterns: tuple[str, ...], recursive: bool, jobs: int, engine: str, address: str | None,
    ext: str | None, retry_failed: bool, segment_frames: int, as_json: bool, progress_mode: str, quiet: bool, no_audio: bool,
    no_subtitles: bool, adapt_lr: float | None, adapt_optimizer: str, save_masks: Path | None, report: Path | None,
    **opts,
) -> None:
    """Upscale every video and image sequence in IN_DIR into OUT_DIR, mirroring the folder tree.

    A folder holding only numbered images is one image sequence; it becomes a folder of frames
    named and numbered like its own (a video with a video --ext and --fps), and a gap in
    its numbering fails it alone. A manifest in OUT_DIR/.vsrpipe records every input; a
    rerun skips finished ones whose input and settings are unchanged, redoes changed ones,
    resumes long files at their first unfinished segment and sequence outputs at their
    first unfinished frame, with output identical to an uninterrupted run. An input that
    fails fails alone: the batch finishes the rest and exits 8. Every `enhance` option
    applies to each input; --report writes the batch report as JSON. See docs/batch.md.
    """
    from vsr_pipeline.api import make_config
    from vsr_pipeline.batch.runner import BatchOptions, run_batch

    config = make_config(
        copy_audio=not no_audio, copy_subtitles=not no_subtitles, optimizer=adapt_optimizer, lr=adapt_lr,
        save_masks=str(save_masks) if save_masks is not None else None, **opts,
    )
    options = BatchOptions(patterns=patterns, recursive=recursive, jobs=jobs, engine=engine, address=address, ext=ext,
                           retry_failed=retry_failed, segment_frames=segment_frames)
    show = _progress(quiet, progress_mode)
    try:
        result = run_batch(in_dir, out_dir, config, options, progress=show, report=report)
        show.finish(result)
    finally:
        show.close()
    data = result.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    elif not quiet:
        _table(result)
    click.get_current_context().exit(result.exit_code)


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name) written as escapes, so that a row stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(result) -> None:
    rows = [(o.status, "-" if o.frames is None else str(o.frames), "-" if o.seconds is None else f"{o.seconds:.1f}",
             printable(o.path), printable(o.reason or "")) for o in result.outcomes]
    width = max([len(r[3]) for r in rows] + [4])
    click.echo(f"{'status':8} {'frames':>7} {'seconds':>8}  {'file':{width}}  note")
    for status, frames, seconds, path, note in rows:
        click.echo(f"{status:8} {frames:>7} {seconds:>8}  {path:{width}}  {note}".rstrip())
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("done", "skipped", "failed"))
    click.echo(f"{counts} in {result.seconds:.1f} s")


class _progress:
    """Progress over the batch: a tqdm bar, a log line every PROGRESS_EVERY seconds, or JSON lines (``--progress``)."""

    def __init__(self, quiet: bool, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "none" if quiet else "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self.bar = None
        self.last = 0.0
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(unit="frame", dynamic_ncols=True, leave=False, smoothing=0.1)

    def __call__(self, snap, *, final: bool = False) -> None:
        self.snap = snap
        if self.mode == "none":
            return
        if self.bar is not None:
            if snap.frames_total and self.bar.total != snap.frames_total:
                self.bar.total = snap.frames_total
            self.bar.set_postfix_str(f"files {snap.files_done}/{snap.files_total}", refresh=False)
            self.bar.update(snap.frames_done - self.bar.n)
            return
        now = time.monotonic()
        if not final and self.last and now - self.last < (PROGRESS_EVERY if self.mode == "log" else 0.5):
            return
        self.last = now
        if self.mode == "json":
            eta = None if snap.eta is None else round(snap.eta, 1)
            click.echo(json.dumps({"files": snap.files_done, "files_total": snap.files_total, "frames": snap.frames_done,
                                   "total": snap.frames_total or None, "fps": round(snap.fps, 3), "eta": eta}), err=True)
            return
        total = f"/{snap.frames_total}" if snap.frames_total else ""
        eta = f", ETA {_clock(snap.eta)}" if snap.eta is not None else ""
        click.echo(f"batch: {snap.files_done}/{snap.files_total} files, {snap.frames_done}{total} frames, "
                   f"{snap.fps:.1f} fps{eta}", err=True)

    def finish(self, result) -> None:
        """The last line, whatever the interval: the final counts, and in json mode a ``done`` record."""
        snap = getattr(self, "snap", None)
        if self.mode in ("log", "json") and snap is not None:
            self(snap, final=True)
        if self.mode == "json":
            counts = {s: result.count(s) for s in ("done", "skipped", "failed")}
            click.echo(json.dumps({"event": "done", "seconds": round(result.seconds, 3), "counts": counts,
                                   "exit_code": result.exit_code}), err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
