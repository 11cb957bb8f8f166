"""The Ray engine: ``--jobs`` actors that each keep a model loaded, fed jobs by the driver.

Following Ray's batch-inference pattern: an actor holds the stage and processes many
jobs (whole files, planning passes, segments, joins); the driver submits one job per idle
actor, gathers with ``ray.wait`` and records each result as it arrives. An actor whose
process dies is restarted by Ray and its job retried (``max_restarts`` /
``max_task_retries``); only when the retries are spent does the job fail, and then only
its file. Workers report frames done to a small progress actor that the driver reads.

Workers read inputs and write outputs at the same paths as the driver: on a cluster,
IN_DIR and OUT_DIR must be on a file system every node mounts at the same path.

Connecting (:func:`connect`): a cluster named by ``--address`` must answer within
:data:`CONNECT_TIMEOUT` seconds (``VSRPIPE_RAY_CONNECT_TIMEOUT``), or the batch stops with
one sentence and exit 4 (:class:`ClusterError`) before any job is sent. A TCP connection
and an HTTP/2 (gRPC) greeting to the address Ray will dial come first, so an address where
nothing listens fails at once instead of in Ray's minutes of retries. Like ``ray start``,
the driver presents this machine's Ray token when one is found and ``RAY_AUTH_MODE`` is
unset (a cluster without token authentication ignores it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid

import ray

from vsr_pipeline.batch.jobs import Job, execute, limit_threads
from vsr_pipeline.errors import ConfigError, OutputError

log = logging.getLogger(__name__)

RETRIES = 2  # restarts of a dead actor, and retries of the job it was running
CONNECT_TIMEOUT = 10.0  # seconds a cluster named by --address has to answer
TIMEOUT_ENV = "VSRPIPE_RAY_CONNECT_TIMEOUT"  # overrides CONNECT_TIMEOUT (seconds)
INIT_ATTEMPTS = 3  # ray.init's attempts once a gRPC server answered (Ray's own default: 20, up to 40 s each)
# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS frame.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes((0, 0, 0, 4, 0, 0, 0, 0, 0))
_H2_SETTINGS = 4
_AUTH_ERROR = getattr(ray.exceptions, "AuthenticationError", ())  # Ray with token authentication


class ClusterError(OutputError):
    """The Ray cluster named by ``--address`` cannot be reached, or refuses this driver (exit 4)."""


def connect_timeout() -> float:
    """Seconds a cluster has to answer: ``VSRPIPE_RAY_CONNECT_TIMEOUT``, else :data:`CONNECT_TIMEOUT`."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise ConfigError(f"{TIMEOUT_ENV} must be a number of seconds above 0, got {raw!r}.")
    return value


def init_local(**options) -> None:
    """Start a local Ray instance that listens on 127.0.0.1 only (``options``: more ``ray.init`` arguments).

    Left to itself Ray swaps 127.0.0.1 for the machine's address and listens on every
    interface; its one-machine mode (the constant behind ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``,
    read when the node starts) keeps every server on loopback.
    """
    consts = getattr(getattr(ray, "_private", None), "ray_constants", None)
    before = getattr(consts, "ENABLE_RAY_CLUSTER", None)
    if before is not None:
        consts.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(include_dashboard=False, log_to_driver=False, **options)
    finally:
        if before is not None:
            consts.ENABLE_RAY_CLUSTER = before


def connect(address: str | None) -> None:
    """``ray.init`` for a batch: a new local instance on loopback, or the cluster at ``address`` (see the module doc)."""
    if address is None:
        init_local()
        return
    timeout = connect_timeout()
    dialled = _dialled(address)
    if dialled is not None:
        _probe(address, dialled, timeout)
    _present_token()
    try:
        with _env_default("RAY_gcs_server_port_wait_time_s", str(INIT_ATTEMPTS)):
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except Exception as exc:
        if ray.is_initialized():
            ray.shutdown()
        if isinstance(exc, _AUTH_ERROR) or _says(exc, "InvalidAuthToken", "Unauthenticated"):
            raise ClusterError(_auth_fix(address, exc)) from exc
        if isinstance(exc, (ConnectionError, RuntimeError, ray.exceptions.RayError)):
            raise ClusterError(f"Cannot connect to the Ray cluster at {address} ({_first_line(exc)}).") from exc
        raise


def _dialled(address: str) -> tuple[str, int] | None:
    """The (host, port) Ray dials for ``address``: for 127.0.0.1 it dials this node's IP (None: Ray looks it up)."""
    if address.startswith("ray://"):  # Ray Client: dialled as written
        hostport: str | None = address[len("ray://"):]
    else:
        try:
            from ray._private.services import canonicalize_bootstrap_address
        except ImportError:
            hostport = address
        else:
            try:
                hostport = canonicalize_bootstrap_address(address)
            except ValueError as exc:
                raise ConfigError(f"--address must be HOST:PORT (as `ray start --head` prints it), got {address!r}.") from exc
    return None if hostport is None else _split(hostport)


def _split(hostport: str) -> tuple[str, int] | None:
    host, _, port = hostport.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _probe(address: str, target: tuple[str, int], timeout: float) -> None:
    """Raise :class:`ClusterError` unless a gRPC server answers at ``target`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    where = f"{target[0]}:{target[1]}"
    at = address if where == address else f"{address} ({where})"
    try:
        sock = socket.create_connection(target, timeout=timeout)
    except OSError as exc:
        given = _split(address)
        if given is not None and given != target and _accepts(given, deadline):
            raise ClusterError(
                f"The Ray cluster at {address} listens on loopback only but Ray dials {where} for that address: set "
                f"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 for vsrpipe as for its `ray start` (docs/batch.md).") from exc
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ClusterError(
            f"No Ray cluster answers at {at} ({why}; vsrpipe waits up to {timeout:g} s, set by {TIMEOUT_ENV}): "
            f"start one with `ray start --head`, or pass the address it printed.") from exc
    with sock:
        if os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true"):
            return  # a TLS server greets only after the handshake; ray.init will tell
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(_H2_HELLO)
            head = sock.recv(9)
        except OSError:
            head = b""
    if len(head) < 4 or head[3] != _H2_SETTINGS:
        raise ClusterError(f"What answers at {at} is not a Ray cluster (no gRPC greeting within {timeout:g} s, "
                           f"set by {TIMEOUT_ENV}): pass the address `ray start --head` printed.")


def _accepts(target: tuple[str, int], deadline: float) -> bool:
    try:
        with socket.create_connection(target, timeout=max(0.1, deadline - time.monotonic())):
            return True
    except OSError:
        return False


def _present_token() -> None:
    """Switch on token authentication when RAY_AUTH_MODE is unset and a Ray token is found, as ``ray start`` does."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    ray_log = logging.getLogger(maybe_enable_token_auth_if_token_available.__module__)
    level = ray_log.level
    ray_log.setLevel(logging.ERROR)  # its warning speaks to a head node ("… for this Ray cluster")
    try:
        if maybe_enable_token_auth_if_token_available(warn_if_disabled=False):
            log.info("Presenting this machine's Ray authentication token (RAY_AUTH_MODE=token).")
    finally:
        ray_log.setLevel(level)


def _auth_fix(address: str, exc: Exception) -> str:
    get = "`ray get-auth-token` prints on the head node (or copy its ~/.ray/auth_token here)"
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return f"The Ray cluster at {address} requires token authentication: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the token {get}."
    if isinstance(exc, _AUTH_ERROR):
        return f"Ray token authentication is on (RAY_AUTH_MODE=token) but no token was found here: set RAY_AUTH_TOKEN to the token {get}."
    return f"The Ray cluster at {address} refused this machine's authentication token: set RAY_AUTH_TOKEN to the token {get}."


def _says(exc: BaseException, *words: str) -> bool:
    """Whether ``exc`` or an exception it was raised from mentions one of ``words``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(w in str(exc) for w in words):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


@contextlib.contextmanager
def _env_default(name: str, value: str):
    """Set environment variable ``name`` to ``value`` for the block, unless the user set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


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
            connect(address)
            self.started = True
        try:
            self._start(jobs, gpu)
        except BaseException:
            if self.started:
                ray.shutdown()
            raise

    def _start(self, jobs: int, gpu: bool) -> None:
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
