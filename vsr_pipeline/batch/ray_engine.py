"""The Ray engine: ``--jobs`` actors that each keep a model loaded, fed jobs by the driver.

Following Ray's batch-inference pattern: an actor holds the stage and processes many
jobs (whole files, planning passes, segments, joins); the driver submits one job per idle
actor, gathers with ``ray.wait`` and records each result as it arrives. An actor whose
process dies is restarted by Ray and its job retried (``max_restarts`` /
``max_task_retries``); only when the retries are spent does the job fail, and then only
its file. Workers report frames done to a small progress actor that the driver reads.

Workers read inputs and write outputs at the same paths as the driver: on a cluster,
IN_DIR and OUT_DIR must be on a file system every node mounts at the same path.
"""

from __future__ import annotations

import os
import uuid

import ray

from vsr_pipeline.batch.jobs import Job, execute, limit_threads

RETRIES = 2  # restarts of a dead actor, and retries of the job it was running


@ray.remote(num_cpus=0)
class ProgressSink:
    """Frames done per running job, written by the workers and read by the driver."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, job_id: str, frames: int) -> None:
        self.frames[job_id] = frames

    def finish(self, job_id: str) -> None:
        self.frames.pop(job_id, None)

    def take(self) -> dict[str, int]:
        return dict(self.frames)


@ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)
class Worker:
    """Runs jobs with one loaded stage (built at the first job, kept while the settings stay the same)."""

    def __init__(self, sink_name: str, workers_per_node: int) -> None:
        self.sink = ray.get_actor(sink_name)  # by name: a restarted actor needs no argument from the object store
        limit_threads(workers_per_node)

    def run(self, job: Job) -> dict:
        import time

        last = [0.0]

        def report(frames: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25:
                last[0] = now
                self.sink.report.remote(job.id, frames)

        try:
            return execute(job, report)
        finally:
            self.sink.finish.remote(job.id)

    def pid(self) -> int:
        return os.getpid()


class RayEngine:
    """``jobs`` :class:`Worker` actors on the cluster at ``address`` (None: a local Ray instance)."""

    def __init__(self, jobs: int, address: str | None = None, *, gpu: bool = False) -> None:
        self.started = False
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
            self.started = True
        self.sink_name = f"vsrpipe-progress-{uuid.uuid4().hex[:12]}"
        self.sink = ProgressSink.options(name=self.sink_name).remote()
        self.per_node = max(1, min(jobs, int(ray.available_resources().get("CPU", 1))))
        self.options = {"num_cpus": 1, "num_gpus": 1 if gpu else 0}
        env = {k: v for k, v in os.environ.items() if k.startswith("VSRPIPE_")}  # settings reach the workers
        if env:
            self.options["runtime_env"] = {"env_vars": env}
        self.workers = [self._new_worker() for _ in range(jobs)]
        self.idle = list(self.workers)
        self.running: dict = {}  # ObjectRef -> (job, worker)
        self._progress: dict[str, int] = {}

    def _new_worker(self):
        return Worker.options(**self.options).remote(self.sink_name, self.per_node)

    @property
    def free(self) -> int:
        return len(self.idle)

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def submit(self, job: Job) -> None:
        worker = self.idle.pop()
        self.running[worker.run.remote(job)] = (job, worker)

    def poll(self, timeout: float) -> list[tuple[Job, dict]]:
        if not self.running:
            return []
        ready, rest = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        out = []
        for ref in ready:
            job, worker = self.running.pop(ref)
            try:
                out.append((job, ray.get(ref)))
                self.idle.append(worker)
                continue
            except ray.exceptions.RayActorError as exc:  # restarts spent: replace the actor
                self.workers.remove(worker)
                worker = self._new_worker()
                self.workers.append(worker)
                out.append((job, {"error": f"Its Ray worker died {RETRIES + 1} times ({type(exc).__name__}).", "exit_code": 1}))
            except ray.exceptions.RayError as exc:
                out.append((job, {"error": f"Ray failed to run it ({type(exc).__name__}: {exc}).", "exit_code": 1}))
            self.idle.append(worker)
        return out

    def progress(self) -> dict[str, int]:
        try:
            self._progress = ray.get(self.sink.take.remote(), timeout=2)
        except ray.exceptions.RayError:
            pass
        return dict(self._progress)

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker)
        ray.kill(self.sink)
        if self.started:
            ray.shutdown()
