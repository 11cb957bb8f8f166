"""The local engine: jobs run in this process (``--jobs 1``) or in a pool of worker processes.

Every engine offers the same four calls to the batch driver::

    engine.free            # how many more jobs it takes now
    engine.submit(job)     # start one
    engine.poll(timeout)   # -> [(job, result dict)], the jobs finished meanwhile
    engine.progress()      # -> {job id: frames done} of the jobs running
    engine.close()

Worker processes are forked from a ``forkserver`` that has imported torch but never run
it (so no thread pools are forked, and a worker starts in milliseconds, not seconds); each
keeps its model loaded between jobs. A worker that dies (a crash in a decoder, the OOM killer)
breaks the pool: it is rebuilt and the jobs that were running are retried, up to
``retries`` times each, before they count as failed.

Workers never outlive the driver: each watches the driver's process (a pidfd, readable
the moment it exits, ``kill -9`` included), stops its job when the driver is gone — its
temporary files removed as for SIGTERM — and refuses to publish an output once the driver
(and with it the manifest's lock) is gone. The fork server then exits with its last worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import queue
import select
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from vsr_pipeline.batch.jobs import Job, execute, limit_threads
from vsr_pipeline.errors import OutputError, Terminated

_progress_queue = None  # set in each worker process
GRACE = 10.0  # seconds a worker whose driver died has to remove its temporary files before it is gone for good


def _init_worker(q, workers: int, driver: int) -> None:
    global _progress_queue
    _progress_queue = q
    limit_threads(workers)
    watch_driver(driver)


def watch_driver(driver: int) -> None:
    """Stop this worker process when the process ``driver`` exits, and never publish after it has.

    The driver holds the manifest's lock; once it is gone nothing may appear at an output
    path. A pidfd becomes readable when the process exits, however it died.
    """
    from vsr_pipeline.io import files

    try:
        pidfd = os.pidfd_open(driver)
    except ProcessLookupError:
        os._exit(1)  # already gone before this worker started

    def gone() -> bool:
        return bool(select.select([pidfd], [], [], 0)[0])

    def guard(target: Path) -> None:
        if gone():
            raise OutputError(f"The batch driver stopped; {str(target)!r} was not published.")

    def wait() -> None:
        select.select([pidfd], [], [])
        threading.Timer(GRACE, os._exit, (1,)).start()
        os.kill(os.getpid(), signal.SIGTERM)  # unwinds the job in the main thread: its temp files are removed

    files.set_publish_guard(guard)
    threading.Thread(target=wait, name="vsrpipe-driver-watch", daemon=True).start()


_stopping = False  # SIGTERM arrived during a job: the worker ends once the job has unwound


def _stop(signum, frame) -> None:
    global _stopping
    _stopping = True
    raise Terminated(signum)


def _execute_in_worker(job: Job) -> dict:
    """Run one job; SIGTERM unwinds it (temporary files removed) while it runs, and kills an idle worker.

    The raising handler is installed only for the job: an idle worker waits in a blocking
    read of the pool's queue, and a Python handler for a signal that lands just before that
    read starts never runs — the worker would ignore the pool's ``terminate()`` of a broken
    pool and the driver would wait for it for ever. Idle, the default action ends it at once;
    stopped mid-job, the job unwinds (its temporary files removed) and the worker then ends
    itself instead of returning to the queue (where a broken pool's join would wait on it).
    """
    last = [0.0]

    def report(frames: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25:  # a queue message per frame would cost more than the frame
            last[0] = now
            _progress_queue.put((job.id, frames))

    signal.signal(signal.SIGTERM, _stop)
    try:
        return execute(job, report)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _stopping:  # told to stop (a broken pool, the driver's death): the job has unwound, now go
            os.kill(os.getpid(), signal.SIGTERM)


def _end_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Tell every worker process of a broken ``pool`` to stop (SIGTERM).

    The pool's own manager thread terminates the workers it knows and then joins all of
    them, holding the pool's shutdown lock; a worker that was being started while it
    looked (workers start on demand, as jobs are submitted) is joined without having been
    told to stop, and the driver would wait for ever (CPython 3.12's ProcessPoolExecutor).
    Signalled here, an idle worker ends at once and a busy one once its job has unwound.
    """
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()


class LocalEngine:
    """``jobs`` workers on this machine; ``jobs == 1`` runs each job in this process (no start-up cost)."""

    def __init__(self, jobs: int = 1, *, retries: int = 2, tick: Callable[[], None] | None = None) -> None:
        self.jobs = max(1, jobs)
        self.retries = retries
        self.tick = tick  # called while an in-process job runs, so that the driver can show progress
        self._waiting: list[Job] = []
        self._running: dict[cf.Future, Job] = {}
        self._progress: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._pool: cf.ProcessPoolExecutor | None = None
        self._queue = None

    @property
    def free(self) -> int:
        busy = len(self._waiting) + len(self._running)
        return max(0, self.jobs - busy)

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._running)

    def submit(self, job: Job) -> None:
        if self.jobs == 1:
            self._waiting.append(job)
            return
        if self._pool is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["vsr_pipeline.batch.jobs", "torch"])  # imported once, in the server
            self._queue = ctx.Queue()
            self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                                initargs=(self._queue, self.jobs, os.getpid()))
        self._running[self._pool.submit(_execute_in_worker, job)] = job

    def progress(self) -> dict[str, int]:
        if self._queue is not None:
            try:
                while True:
                    job_id, frames = self._queue.get_nowait()
                    self._progress[job_id] = frames
            except queue.Empty:
                pass
        return dict(self._progress)

    def poll(self, timeout: float) -> list[tuple[Job, dict]]:
        if self._waiting:  # in process: run one job now
            job = self._waiting.pop(0)

            def report(frames: int) -> None:
                self._progress[job.id] = frames
                if self.tick is not None:
                    self.tick()

            result = execute(job, report)
            self._progress.pop(job.id, None)
            return [(job, result)]
        if not self._running:
            return []
        done, _ = cf.wait(list(self._running), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Job, dict]] = []
        lost: list[Job] = []
        for fut in done:
            job = self._running.pop(fut)
            self._progress.pop(job.id, None)
            try:
                out.append((job, fut.result()))
            except cf.process.BrokenProcessPool:
                lost.append(job)
        if lost:  # a worker died: every job of the old pool died with it; start a new pool and retry them
            lost += self._running.values()
            self._running.clear()
            if self._pool is not None:
                _end_workers(self._pool)
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            for job in lost:
                n = self._attempts[job.id] = self._attempts.get(job.id, 0) + 1
                if n > self.retries:
                    out.append((job, {"error": f"Its worker process died {n} times.", "exit_code": 1}))
                else:
                    self.submit(job)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
