"""The units of batch work and the one function every engine runs them with.

A job is a plain frozen dataclass (it pickles to a worker process or a Ray actor):

* ``file``: upscale a whole short file with :func:`~vsr_pipeline.pipeline.run_enhance`; an
  image-sequence output is staged frame by frame in the work folder, so that a rerun
  keeps the frames a killed run finished (:func:`staging_folder`);
* ``plan``: the planning pass of a long file (scene cuts, timestamps, segments);
* ``segment``: encode one segment into the file's work folder (fsynced);
* ``join``: join the segments into the output and mux audio and subtitles.

:func:`execute` never raises for a failure a user can cause: it returns
``{"error": sentence, "exit_code": n}`` so that one bad file fails alone. The stage is
built once per worker process and reused while the settings stay the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from vsr_pipeline.batch.faults import fault
from vsr_pipeline.config import EnhanceConfig, StageConfig
from vsr_pipeline.errors import InputError, OutputError, VsrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One unit of work for a worker."""

    kind: str  # "file" | "plan" | "segment" | "join"
    key: str  # the input's path relative to IN_DIR
    src: Path
    dst: Path
    config: EnhanceConfig
    replace: bool = False  # the output may replace an existing file (ours, or --overwrite)
    work: Path | None = None  # the file's work folder: segments, or a sequence output's staged frames
    idx: int = -1  # segment number (segment jobs)
    plan: dict | None = None  # the plan (segment and join jobs)
    target: int = 0  # frames per segment (plan jobs)
    files: tuple[str, ...] = field(default_factory=tuple)  # segment files in order (join jobs)
    hashes: tuple[str, ...] = field(default_factory=tuple)  # their SHA-256, as recorded (join jobs)
    identity: tuple[int, int, str] | None = None  # the input's (size, mtime_ns, head_tail) when its work began

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.key}:{self.idx}"


_stage: tuple[StageConfig, object] | None = None


def stage_for(config: StageConfig):
    """The worker's :class:`~vsr_pipeline.enhancer.Enhancer` for ``config``: built once, then reused."""
    global _stage
    if _stage is None or _stage[0] != config:
        from vsr_pipeline.enhancer import Enhancer

        _stage = None  # free the old model first
        _stage = (config, Enhancer(config))
    return _stage[1]


def execute(job: Job, progress: Callable[[int], None] | None = None) -> dict:
    """Run ``job``; returns its result, or ``{"error", "exit_code"}`` when it failed.

    ``progress(frames)`` is called with the frames this job has finished so far.
    """
    fault("worker")
    try:
        return _run(job, progress)
    except VsrError as exc:
        return {"error": str(exc), "exit_code": exc.exit_code}
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return {"error": f"{exc.strerror or exc}{where}.", "exit_code": 4}
    except MemoryError:
        return {"error": "Out of memory; try --tile or a smaller --batch.", "exit_code": 1}
    except Exception as exc:  # a bug: fail this file, keep the batch going
        log.exception("internal error in %s", job.id)
        return {"error": f"Internal error: {type(exc).__name__}: {exc}.", "exit_code": 1}


def check_input(job: Job) -> None:
    """Raise :class:`InputError` when the input is no longer the file whose work began (replaced or edited meanwhile)."""
    if job.identity is None:
        return
    from vsr_pipeline.batch.manifest import Identity

    try:
        now = Identity.of(job.src)
    except OSError as exc:
        raise InputError(f"Input file {str(job.src)!r} cannot be read any more ({exc.strerror}).") from exc
    if now != Identity(*job.identity):
        raise InputError(
            f"Input file {str(job.src)!r} changed while it was being upscaled (its size, time or content differ "
            "from when its work began); nothing was published. Run again to redo it from the start."
        )


def _run(job: Job, progress) -> dict:
    import time

    from vsr_pipeline.io.probe import probe

    t0 = time.perf_counter()

    if job.kind == "file":
        from vsr_pipeline.pipeline import run_enhance

        from vsr_pipeline.io.sequence_sink import Staging

        cfg = replace(job.config, overwrite=job.replace, report=None)
        staging = None
        if job.work is not None:
            staging = Staging(staging_folder(job.work, cfg, job.dst, job.identity), after_frame=lambda n: fault("frame", n))
        res = run_enhance(job.src, job.dst, cfg, progress=(lambda done, _: progress(done)) if progress else None,
                          stage=stage_for(cfg.stage), staging=staging)
        return {"frames": res.frames, "seconds": res.seconds, "lost": res.lost_frames, "report": res.adapt,
                "output_hash": output_hash(job.dst)}
    check_input(job)
    info = probe(job.src)
    if job.kind == "plan":
        from vsr_pipeline.batch.segments import plan_file

        plan = plan_file(job.src, info, job.config, job.target).to_dict()
        check_input(job)
        return {"plan": plan, "seconds": time.perf_counter() - t0}
    from vsr_pipeline.batch.segments import Plan, encode_segment, join_segments, segment_path

    plan = Plan.from_dict(job.plan or {})
    if job.kind == "segment":
        assert job.work is not None
        job.work.mkdir(parents=True, exist_ok=True)
        path = segment_path(job.work, job.idx, job.dst.suffix)
        result = encode_segment(job.src, info, job.config, plan, job.idx, path, stage_for(job.config.stage), progress)
        try:
            check_input(job)  # the frames just encoded came from the file the other segments came from
        except InputError:
            path.unlink(missing_ok=True)
            raise
        return {**result, "file": path.name, "size": path.stat().st_size, "sha256": file_hash(path)}
    if job.kind == "join":
        from vsr_pipeline.io.files import check_paths

        assert job.work is not None
        check_paths(job.src, job.dst, job.replace)
        files = [job.work / f for f in job.files]
        for path, want in zip(files, job.hashes):
            if not path.is_file() or file_hash(path) != want:
                raise OutputError(
                    f"Segment {str(path)!r} changed after it was encoded; nothing was published. "
                    "Run again: the segment is encoded anew."
                )
        w, h = info.display_size
        oh, ow = job.config.stage.output_size(h, w)  # the stage's rule, without loading its model
        frames = join_segments(job.src, info, job.config, files, job.dst, (ow, oh), replace=job.replace,
                               expected=plan.frames, before_publish=lambda: check_input(job))
        return {"frames": frames, "output_hash": file_hash(job.dst), "seconds": time.perf_counter() - t0}
    raise ValueError(f"unknown job kind {job.kind!r}")


def staging_folder(work: Path, config: EnhanceConfig, dst: Path, identity: tuple | None) -> Path:
    """The folder in ``work`` where a sequence output's frames are staged, named for the settings and the input.

    A rerun with the same settings on the same input finds the frames a killed run left;
    one with other settings or another input gets a folder of its own, and the folders
    of other settings are removed here, so frames of two runs are never mixed.
    """
    from vsr_pipeline.batch.plan import settings_hash

    mark = hashlib.sha256(f"{settings_hash(config, dst.suffix)}:{dst.name}:{identity}".encode()).hexdigest()[:16]
    folder = work / f"frames-{mark}"
    for other in work.glob("frames-*") if work.is_dir() else ():
        if other != folder:
            shutil.rmtree(other, ignore_errors=True)
    return folder


def _frames_of(dst: Path) -> list[Path] | None:
    """The published frames of a sequence output ``dst`` (a numbered pattern), or None when ``dst`` is a file."""
    from vsr_pipeline.io.sequence_sink import existing_frames, is_sequence_output

    if not is_sequence_output(dst):
        return None
    return [dst.parent / name for name in existing_frames(dst)]


def output_exists(dst: Path) -> bool:
    """True when something is at the output ``dst``: the file, or frames named like the pattern."""
    frames = _frames_of(dst)
    return dst.exists() if frames is None else bool(frames)


def output_stat(dst: Path) -> tuple[int, int]:
    """(size, mtime_ns) of the output ``dst``; a sequence's: its frames' total size and newest mtime (OSError: none)."""
    frames = _frames_of(dst)
    if frames is None:
        st = dst.stat()
        return st.st_size, st.st_mtime_ns
    if not frames:
        raise FileNotFoundError(2, "no frames", str(dst))
    stats = [f.stat() for f in frames]
    return sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)


def output_hash(dst: Path) -> str:
    """SHA-256 of the output ``dst``: the file's content, or a sequence's frame names and contents in order."""
    frames = _frames_of(dst)
    if frames is None:
        return file_hash(dst)
    h = hashlib.sha256()
    for frame in frames:
        h.update(f"{frame.name}\0{file_hash(frame)}\n".encode())
    return h.hexdigest()


def file_hash(path: Path) -> str:
    """SHA-256 of a file's content."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def limit_threads(workers: int) -> None:
    """Share the CPU cores between ``workers`` worker processes (torch's intra-op threads)."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))
