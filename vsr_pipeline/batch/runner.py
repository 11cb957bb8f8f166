"""The batch driver: decides what each file needs, hands jobs to an engine, records results as they arrive.

::

    result = run_batch("footage/", "upscaled/", make_config(model="vsrnet-x4"), BatchOptions(jobs=2))
    result.exit_code    # 0, or 8 when some file failed

Only the driver writes the manifest, one committed transaction per state change, and
only after the work it records is durable (a published output, an fsynced segment), so a
``kill -9`` anywhere leaves a manifest that never claims more than exists. A rerun skips
done files whose input and settings are unchanged, redoes changed ones, resumes long
files at their first unfinished segment and sequence outputs at their first unstaged
frame, and retries failed files only when asked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from dataclasses import replace as changed
from pathlib import Path
from typing import Callable

from vsr_pipeline.batch.jobs import Job, file_hash, output_exists, output_hash, output_stat
from vsr_pipeline.batch.manifest import Identity, Manifest
from vsr_pipeline.batch.plan import WORK_DIR, Item, Skipped, refuse_links, scan, settings_hash, work_folder
from vsr_pipeline.batch.segments import Plan, merge_reports, segment_path
from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.errors import EXIT_SOME_FAILED, ConfigError, OutputError, VsrError
from vsr_pipeline.io.sequence import is_sequence_input
from vsr_pipeline.io.sequence_sink import is_sequence_output
from vsr_pipeline.io.files import check_report_path, remove_stale_temps, write_bytes_atomic

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs (the options ``vsrpipe batch`` adds to those of ``enhance``)."""

    patterns: tuple[str, ...] = ()  # file name globs; none: every file with a video extension
    recursive: bool = False  # descend into sub-folders (the output tree mirrors them)
    jobs: int = 1  # files (or segments) worked on at once: worker processes or Ray actors
    engine: str = "local"  # "local" (this machine) or "ray" (a Ray cluster)
    address: str | None = None  # Ray: address of an existing cluster; None: start a local instance
    ext: str | None = None  # output extension, e.g. ".mkv"; None: the input's
    retry_failed: bool = False  # redo files that failed in an earlier run
    segment_frames: int = 1000  # a file longer than this is done in resumable segments of about this many frames; 0: never

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {self.jobs}.")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be 'local' or 'ray', got {self.engine!r}.")
        if self.address is not None and self.engine != "ray":
            raise ConfigError("--address applies only with --engine ray.")
        if self.segment_frames < 0:
            raise ConfigError(f"--segment-frames must be ≥ 0 (0: whole files only), got {self.segment_frames}.")


@dataclass
class Outcome:
    """What became of one input."""

    path: str  # relative to IN_DIR
    status: str  # "done", "skipped" or "failed"
    reason: str | None = None  # why skipped or failed; for done: how (resumed, redone)
    output: str | None = None
    frames: int | None = None
    seconds: float | None = None  # worker time spent on it in this run (its queue wait not counted)
    exit_code: int | None = None
    report: dict | None = field(default=None, repr=False)  # adaptation report (done files)


@dataclass
class BatchResult:
    """The batch report: one :class:`Outcome` per file met."""

    outcomes: list[Outcome]
    seconds: float

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when no file failed, else :data:`~vsr_pipeline.errors.EXIT_SOME_FAILED`."""
        return EXIT_SOME_FAILED if self.count("failed") else 0

    def to_dict(self) -> dict:
        keep = ("path", "status", "reason", "output", "frames", "seconds", "exit_code")
        return {
            "seconds": self.seconds,
            "counts": {s: self.count(s) for s in ("done", "skipped", "failed")},
            "exit_code": self.exit_code,
            "files": [{k: getattr(o, k) for k in keep} for o in self.outcomes],
        }


@dataclass(frozen=True)
class Snapshot:
    """Progress over the whole batch."""

    files_done: int
    files_total: int
    frames_done: int
    frames_total: int  # 0 when unknown
    seconds: float
    frames_run: int  # frames computed in this run (for the rate)

    @property
    def fps(self) -> float:
        return self.frames_run / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, or None when unknown."""
        if not self.frames_total or self.fps <= 0:
            return None
        return max(0, self.frames_total - self.frames_done) / self.fps


@dataclass
class _Task:
    item: Item
    replace: bool
    expected: int
    work: Path
    identity: tuple[int, int, str]
    config: EnhanceConfig  # the batch's, with --fps kept only for an image-sequence input
    segmented: bool = False
    plan: Plan | None = None
    pending: set[int] = field(default_factory=set)
    frames: int = 0  # frames finished (segments of earlier runs included)
    resumed: int = 0  # segments found finished from an earlier run
    failed: bool = False
    reason: str | None = None
    submitted: bool = False  # a job of it went to a worker (the manifest says running)
    seconds: float = 0.0  # worker time of its jobs in this run
    how: str | None = None  # a note for its outcome (redone because ...)


def run_batch(in_dir: Path | str, out_dir: Path | str, config: EnhanceConfig, options: BatchOptions = BatchOptions(),
              progress: Callable[[Snapshot], None] | None = None, *, report: Path | str | None = None) -> BatchResult:
    """Upscale every video in ``in_dir`` into the mirrored tree ``out_dir``; see docs/batch.md.

    ``report``: write the batch report there as JSON (never over a file the batch reads or
    writes; over an existing file only with ``config.overwrite``).
    """
    # absolute before anything reaches a worker: Ray workers run in the folder `ray start` ran in
    in_dir, out_dir = Path(in_dir).absolute(), Path(out_dir).absolute()
    if config.adapt.save_masks is not None:
        raise ConfigError("--save-masks works with one file; use vsrpipe enhance.")
    items, skipped = scan(in_dir, out_dir, patterns=options.patterns, recursive=options.recursive, ext=options.ext)
    refuse_links(out_dir / WORK_DIR, out_dir / WORK_DIR / "work")
    if report is not None:
        used = [out_dir / WORK_DIR, Path(config.model)] + [i.src for i in items] + [i.dst for i in items]
        check_report_path(report, overwrite=config.overwrite, used=used)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {str(out_dir)!r} ({exc.strerror}).") from exc
    driver = Driver(config, options, out_dir=out_dir, work_for=lambda key: work_folder(out_dir, key), progress=progress)
    with Manifest(out_dir / WORK_DIR) as manifest:
        result = driver.run(manifest, items, skipped)
    if report is not None:
        write_bytes_atomic(report, json.dumps(result.to_dict(), indent=2).encode(), replace=config.overwrite)
    return result


def make_engine(options: BatchOptions, config: EnhanceConfig, tick: Callable[[], None] | None = None):
    """The engine ``options`` ask for."""
    if options.engine == "ray":
        try:
            from vsr_pipeline.batch.ray_engine import RayEngine
        except ImportError as exc:
            raise ConfigError("--engine ray needs Ray: pip install 'vsr-pipeline[ray]'.") from exc
        return RayEngine(options.jobs, options.address, gpu=config.runner.device.startswith("cuda"))
    from vsr_pipeline.batch.local import LocalEngine

    return LocalEngine(options.jobs, tick=tick)


class Driver:
    """One batch run over a list of items, with one manifest and one engine."""

    def __init__(self, config: EnhanceConfig, options: BatchOptions, *, out_dir: Path, work_for: Callable[[str], Path],
                 progress: Callable[[Snapshot], None] | None = None, always_segments: bool = False) -> None:
        self.config = config
        self.options = options
        self.out_dir = Path(out_dir).absolute()  # outputs are recorded relative to it
        self.work_for = work_for
        self.on_progress = progress
        self.always_segments = always_segments
        self.tasks: dict[str, _Task] = {}
        self.outcomes: dict[str, Outcome] = {}
        self.ready: deque[Job] = deque()
        self.t0 = time.perf_counter()
        self.frames_before = 0  # frames already finished when this run began
        self._last_tick = 0.0
        self.engine = None

    # The run ----------------------------------------------------------------------------
    def run(self, manifest: Manifest, items: list[Item], skipped: list[Skipped]) -> BatchResult:
        self.m = manifest
        for s in skipped:
            self.outcomes[s.key] = Outcome(s.key, "skipped", s.reason)
        for item in items:
            self._prepare(item)
        self.frames_before = sum(t.frames for t in self.tasks.values())
        self.engine = make_engine(self.options, self.config, tick=self._tick) if self.ready else None
        try:
            while self.ready or (self.engine is not None and self.engine.busy):
                while self.ready and self.engine.free:
                    job = self.ready.popleft()
                    task = self.tasks[job.key]
                    if task.failed:
                        continue
                    if not task.submitted:
                        self.m.running(job.key)
                        task.submitted = True
                    self.engine.submit(job)
                for job, result in self.engine.poll(0.5):
                    self._handle(job, result)
                self._tick(force=True)
        except BaseException:
            try:
                self.m.requeue()  # nothing of theirs was published: the next run starts them again
            except VsrError:
                pass
            raise
        finally:
            if self.engine is not None:
                self.engine.close()
        order = [s.key for s in skipped] + [i.key for i in items]
        outcomes = sorted((self.outcomes[k] for k in order if k in self.outcomes), key=lambda o: o.path)
        return BatchResult(outcomes, time.perf_counter() - self.t0)

    def _prepare(self, item: Item) -> None:
        key, cfg = item.key, self.config
        seq_in, seq_out = is_sequence_input(item.src), is_sequence_output(item.dst)
        if not seq_in:
            cfg = changed(cfg, fps=None)  # --fps is an image sequence's rate; a video has its own
        try:
            ident = Identity.of(item.src)
        except OSError as exc:
            self._fail_early(item, Identity(-1, 0, ""), "", f"Input file {str(item.src)!r} cannot be read ({exc.strerror}).", 3)
            return
        except VsrError as exc:  # an image sequence that is not one clean run: enhance's sentence
            self._fail_early(item, Identity(-1, 0, ""), "", str(exc), exc.exit_code)
            return
        settings = settings_hash(cfg, item.dst.suffix)
        row = self.m.get(key)
        same = row is not None and row.identity == ident and row.settings == settings
        how = None
        if row is not None and not same and row.status in ("queued", "running"):
            how = "restarted: its input or settings changed since the interrupted run"
            log.warning("%s: its input or settings changed since the interrupted run; starting it over", key)
        if same and row.status == "done" and output_exists(item.dst):
            if self._intact(row, item.dst):
                self.outcomes[key] = Outcome(key, "skipped", "unchanged since it was done", str(item.dst), row.frames)
                return
            how = "redone: its output had changed since it was done"
            log.warning("%s: the output %s is not the file this batch published; doing it again", key, item.dst)
        if same and row.status == "failed" and not self.options.retry_failed:
            reason = f"{row.error} (an earlier run; pass --retry-failed to retry)"
            self.outcomes[key] = Outcome(key, "failed", reason, str(item.dst), exit_code=row.exit_code)
            return
        ours = (row is not None and self._same_output(row.output, item.dst)
                and (row.status in ("queued", "running", "done") or bool(row.output_hash)))
        replace = cfg.overwrite or ours
        remove_stale_temps(item.dst.parent if seq_out else item.dst)  # only temp files of dead processes
        from vsr_pipeline.io.source import probe_source

        try:
            info = probe_source(item.src, item.dst, fps=cfg.fps)
        except VsrError as exc:
            self._fail_early(item, ident, settings, str(exc), exc.exit_code)
            return
        if output_exists(item.dst) and not replace:
            self._fail_early(item, ident, settings, f"Output {str(item.dst)!r} already exists; pass --overwrite to replace it.", 4)
            return
        folder = item.dst.parent.parent if seq_out else item.dst.parent  # a sequence's own folder appears when done
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail_early(item, ident, settings, f"Cannot create the output folder {str(folder)!r} ({exc.strerror}).", 4)
            return
        self.m.start(key, self._relative(item.dst), ident, settings, keep_segments=same)
        from vsr_pipeline.io.transcode import expected_frames

        expected = expected_frames(info, cfg.start, cfg.duration) or 0
        work = self.work_for(key)
        whole = cfg.start is None and cfg.duration is None and cfg.on_error == "stop"  # resumable at all
        segmented = (whole and not seq_in and not seq_out and self.options.segment_frames > 0
                     and (self.always_segments or expected > self.options.segment_frames))
        identity = (ident.size, ident.mtime_ns, ident.head_tail)
        task = self.tasks[key] = _Task(item, replace, expected, work, identity, cfg, segmented, how=how)
        if not same:
            shutil.rmtree(work, ignore_errors=True)
        if not segmented:  # a sequence output is staged frame by frame in the work folder
            self.ready.append(Job("file", key, item.src, item.dst, cfg, replace=replace, identity=identity,
                                  work=work if seq_out and whole else None))
            return
        if same and row.plan:
            task.plan = Plan.from_dict(json.loads(row.plan))
            self._queue_segments(task)
        else:
            self.ready.append(Job("plan", key, item.src, item.dst, cfg, target=self.options.segment_frames or 1000,
                                  identity=identity))

    def _relative(self, dst: Path) -> str:
        """``dst`` as the manifest records it: relative to OUT_DIR, so that any spelling of OUT_DIR finds it."""
        return os.path.relpath(dst, self.out_dir)

    def _same_output(self, recorded: str | None, dst: Path) -> bool:
        """True when the manifest's output (relative to OUT_DIR, or absolute in older manifests) is ``dst``."""
        return recorded is not None and (self.out_dir / recorded).resolve() == dst.resolve()

    def _intact(self, row, dst: Path) -> bool:
        """True when ``dst`` is still the output this batch published: same size and mtime, else the same hash."""
        try:
            size, mtime_ns = output_stat(dst)
        except OSError:
            return False
        if row.output_size is not None and (size, mtime_ns) == (row.output_size, row.output_mtime_ns):
            return True
        if row.output_size is not None and size != row.output_size:
            return False
        try:
            if not row.output_hash or output_hash(dst) != row.output_hash:
                return False
        except OSError:
            return False
        self.m.set_output(row.path, size, mtime_ns)  # touched, not changed: remember its new time
        return True

    def _queue_segments(self, task: _Task) -> None:
        assert task.plan is not None
        key, plan = task.item.key, task.plan
        for stale in task.work.glob(".*.partial*") if task.work.is_dir() else ():
            stale.unlink(missing_ok=True)  # a killed worker's half-written segment
        done = self.m.segments(key)
        ext = task.item.dst.suffix
        for i, seg in enumerate(plan.segments):
            path = segment_path(task.work, i, ext)
            if i in done and _matches(path, done[i]):
                task.frames += seg.end - seg.first
                task.resumed += 1
            else:
                if i in done:
                    log.warning("%s: segment %d (%s) does not match its record; encoding it again", key, i, path)
                    path.unlink(missing_ok=True)
                task.pending.add(i)
                self.ready.append(Job("segment", key, task.item.src, task.item.dst, task.config, work=task.work,
                                      idx=i, plan=plan.to_dict(), identity=task.identity))
        if not task.pending:
            self._queue_join(task)

    def _queue_join(self, task: _Task) -> None:
        assert task.plan is not None
        n = len(task.plan.segments)
        files = tuple(segment_path(task.work, i, task.item.dst.suffix).name for i in range(n))
        done = self.m.segments(task.item.key)
        hashes = tuple(done[i]["sha256"] for i in range(n))
        self.ready.append(Job("join", task.item.key, task.item.src, task.item.dst, task.config, replace=task.replace,
                              work=task.work, plan=task.plan.to_dict(), files=files, hashes=hashes,
                              identity=task.identity))

    # Results ----------------------------------------------------------------------------
    def _handle(self, job: Job, result: dict) -> None:
        task = self.tasks[job.key]
        task.seconds += result.get("seconds") or 0.0
        if "error" in result:
            self._fail(task, result["error"], result["exit_code"])
            return
        if job.kind == "file":
            self._done(task, result["frames"], result["output_hash"], result.get("report"))
        elif job.kind == "plan":
            self.m.set_plan(job.key, result["plan"])
            task.plan = Plan.from_dict(result["plan"])
            task.expected = task.plan.frames
            if not task.failed:
                self._queue_segments(task)
        elif job.kind == "segment":
            self.m.segment_done(job.key, job.idx, result["frames"], result["seconds"], result["file"], result["report"],
                                result["size"], result["sha256"])
            task.pending.discard(job.idx)
            task.frames += result["frames"]
            if not task.pending and not task.failed:
                self._queue_join(task)
        elif job.kind == "join":
            reports = [s["report"] for _, s in sorted(self.m.segments(job.key).items())]
            self._done(task, result["frames"], result["output_hash"], merge_reports(reports))

    def _done(self, task: _Task, frames: int, output_hash: str, report: dict | None) -> None:
        key = task.item.key
        seconds = task.seconds
        size, mtime_ns = output_stat(task.item.dst)
        self.m.done(key, frames, seconds, output_hash, size, mtime_ns)
        shutil.rmtree(task.work, ignore_errors=True)  # its segments or staged frames, now published
        task.frames = frames
        how = task.how
        if task.resumed and task.plan:
            how = f"resumed: {task.resumed} of {len(task.plan.segments)} segments were already done"
        self.outcomes[key] = Outcome(key, "done", how, str(task.item.dst), frames, seconds, report=report)

    def _fail(self, task: _Task, error: str, code: int) -> None:
        if task.failed:
            return
        task.failed = True
        self.m.failed(task.item.key, error, code)
        remove_stale_temps(task.item.dst.parent if is_sequence_output(task.item.dst) else task.item.dst)
        try:
            task.work.rmdir()  # only when no finished segment is kept there
        except OSError:
            pass
        self.outcomes[task.item.key] = Outcome(task.item.key, "failed", error, str(task.item.dst),
                                               seconds=task.seconds, exit_code=code)

    def _fail_early(self, item: Item, ident: Identity, settings: str, error: str, code: int) -> None:
        self.m.start(item.key, self._relative(item.dst), ident, settings, keep_segments=True)
        self.m.failed(item.key, error, code)
        self.outcomes[item.key] = Outcome(item.key, "failed", error, str(item.dst), exit_code=code)

    # Progress ---------------------------------------------------------------------------
    def _tick(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_tick < 0.2:
            return
        self._last_tick = now
        running = sum(self.engine.progress().values()) if self.engine is not None else 0
        done = sum(t.frames for t in self.tasks.values()) + running
        files_done = sum(1 for t in self.tasks.values() if t.failed or self.outcomes.get(t.item.key))
        self.on_progress(Snapshot(files_done, len(self.tasks), done, sum(t.expected for t in self.tasks.values()),
                                  now - self.t0, done - self.frames_before))


def _matches(path: Path, record: dict) -> bool:
    """True when the segment file ``path`` is the one the manifest recorded (size, then SHA-256)."""
    try:
        if record.get("sha256") is None or path.stat().st_size != record.get("size"):
            return False
        return file_hash(path) == record["sha256"]
    except OSError:
        return False
