"""docs/batch.md's Ray recipe as written, on a head started by `ray start` bound to loopback only.

Also what `--engine ray --address` does when the cluster is not there, is not Ray, or refuses
the driver's token: one sentence, exit 4, within the stated timeout, nothing left "running".
Each head lives in its own --temp-dir and process group and is stopped by signalling its own
`ray start --block` process (never `ray stop`, which stops every Ray instance on the machine).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # shipped with Ray

import av
from batch_helpers import vsrpipe
from clips import make_clip

from vsr_pipeline.batch.ray_engine import TIMEOUT_ENV, ClusterError, RayEngine
from vsr_pipeline.errors import ConfigError

LOOPBACK_ONLY = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # docs/batch.md: keep a cluster on this machine
RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


class Head:
    """A `ray start --head --block` in its own process group, its temp dir and its cwd under ``folder``."""

    def __init__(self, folder: Path, token: Path) -> None:
        self.port = free_port()
        self.cwd = folder / "cwd"  # the workers' working folder: relative paths would land here
        self.cwd.mkdir(parents=True)
        self.log = folder / "head.log"
        temp = folder / "t"
        assert len(str(temp)) < 50  # Ray's socket paths under it must stay below 108 bytes
        env = {k: v for k, v in os.environ.items() if k not in RAY_ENV and not k.startswith("VSRPIPE_")}
        env.update([LOOPBACK_ONLY], RAY_AUTH_TOKEN_PATH=str(token), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address", "127.0.0.1",
               "--port", str(self.port), "--temp-dir", str(temp), "--num-cpus", "1", "--include-dashboard", "false",
               "--disable-usage-stats", "--block"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.address = f"127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            assert self.proc.poll() is None, f"ray start exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"ray start not ready in {timeout} s:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.5)

    def processes(self) -> list:
        try:
            me = psutil.Process(self.proc.pid)
            return [me] + me.children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def listening(self) -> list[tuple[str, str, int]]:
        """(process name, address, port) of every listening TCP socket and unconnected UDP socket of the head."""
        out = []
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                for c in p.net_connections(kind="inet"):
                    udp = c.type == socket.SOCK_DGRAM and not c.raddr
                    if c.laddr and (c.status == psutil.CONN_LISTEN or udp):
                        out.append((p.name(), c.laddr.ip, c.laddr.port))
        return out

    def stop(self) -> None:
        procs = self.processes()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        _, alive = psutil.wait_procs(procs, timeout=15)
        for p in alive:  # only descendants of our own head
            with contextlib.suppress(psutil.Error):
                p.kill()


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rh")
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(32))
    h = Head(folder, token)
    try:
        h.wait_ready()
        h.token = token
        yield h
    finally:
        h.stop()


@pytest.fixture
def ray_env(monkeypatch):
    """No Ray settings inherited from the shell; the test sets what it needs."""
    for name in RAY_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def footage(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_clip(folder / f"clip{i}.mp4", n=4, size=(32, 24))
    return folder


def manifest_rows(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / ".vsrpipe" / "manifest.sqlite") as db:
        return db.execute("select path, status from files order by path").fetchall()


def error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# What the driver says when it cannot use the cluster ----------------------------------------

def test_nothing_listening_fails_at_once_with_exit_4_and_leaves_rows_queued(tmp_path, ray_env):
    src = footage(tmp_path / "in")
    t0 = time.monotonic()
    proc = vsrpipe("batch", src, tmp_path / "out", "--engine", "ray", "--address", "127.0.0.1:1",
                   "--model", "bicubic", "--scale", "2", timeout=60)
    took = time.monotonic() - t0
    assert proc.returncode == 4, proc.stderr
    line = error_line(proc)
    assert "No Ray cluster answers at 127.0.0.1:1" in line and TIMEOUT_ENV in line and "ray start --head" in line
    assert "rpc_client" not in proc.stderr and "gcs_client" not in proc.stderr  # Ray never got to retry
    assert took < 30  # a CLI start; the probe itself is refused at once
    assert manifest_rows(tmp_path / "out") == [("clip0.mp4", "queued"), ("clip1.mp4", "queued")]
    assert list((tmp_path / "out").iterdir()) == [tmp_path / "out" / ".vsrpipe"]


@contextlib.contextmanager
def silent_server():
    """A loopback TCP server that accepts and never answers: not a Ray cluster."""
    srv = socket.create_server(("127.0.0.1", 0))
    conns = []

    def serve():
        with contextlib.suppress(OSError):
            while True:
                conns.append(srv.accept()[0])

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()
        for c in conns:
            c.close()


def test_a_service_that_is_not_ray_fails_within_the_timeout(ray_env):
    ray_env.setenv(TIMEOUT_ENV, "1.5")
    ray_env.setattr(ray._private.ray_constants, "ENABLE_RAY_CLUSTER", False)  # as LOOPBACK_ONLY does at import
    with silent_server() as port:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="is not a Ray cluster .no gRPC greeting within 1.5 s") as err:
            RayEngine(1, f"127.0.0.1:{port}")
        assert 1.4 < time.monotonic() - t0 < 5
    assert err.value.exit_code == 4 and not ray.is_initialized()


def test_a_loopback_only_cluster_dialled_at_the_node_ip_names_the_setting(ray_env):
    if ray._private.services.resolve_ip_for_localhost("127.0.0.1") == "127.0.0.1":
        pytest.skip("Ray dials 127.0.0.1 as written here (no other interface, or the setting is on)")
    fix = "listens on loopback only.*RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0"
    with silent_server() as port, pytest.raises(ClusterError, match=fix):
        RayEngine(1, f"127.0.0.1:{port}")
    assert not ray.is_initialized()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_timeout_is_a_config_error(ray_env, value):
    ray_env.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ConfigError, match=f"{TIMEOUT_ENV} must be a number of seconds above 0") as err:
        RayEngine(1, "127.0.0.1:1")
    assert err.value.exit_code == 7


# A real head: loopback only, token authentication ---------------------------------------------

def test_the_head_listens_on_loopback_only(head):
    found = head.listening()
    assert ("gcs_server", head.port) in {(name, port) for name, _, port in found}, found
    assert found and all(is_loopback(ip) for _, ip, _ in found), found
    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family == socket.AF_INET and not is_loopback(a.address)]
    for ip in others:  # and nothing answers at the GCS port on the other interfaces
        with pytest.raises(OSError), socket.create_connection((ip, head.port), timeout=2):
            pass


def refused(head, tmp_path, ray_env, name: str, value: str):
    """`vsrpipe batch` against ``head`` with the environment variable ``name`` set to ``value``; exit 4 expected."""
    ray_env.setenv(name, value)
    ray_env.setenv(TIMEOUT_ENV, "5")
    ray_env.setenv(*LOOPBACK_ONLY)
    src = footage(tmp_path / "in", n=1)
    proc = vsrpipe("batch", src, tmp_path / "out", "--engine", "ray", "--address", head.address,
                   "--model", "bicubic", "--scale", "2", timeout=120)
    assert proc.returncode == 4, proc.stderr
    return proc


def test_a_cluster_with_token_auth_refuses_a_driver_without_token_in_one_sentence(head, tmp_path, ray_env):
    proc = refused(head, tmp_path, ray_env, "RAY_AUTH_MODE", "disabled")  # a driver that does not present a token
    line = error_line(proc)
    assert f"The Ray cluster at {head.address} requires token authentication" in line
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line and "ray get-auth-token" in line
    assert "Internal error" not in proc.stderr
    assert manifest_rows(tmp_path / "out") == [("clip0.mp4", "queued")]


def test_a_wrong_token_is_named(head, tmp_path, ray_env):
    proc = refused(head, tmp_path, ray_env, "RAY_AUTH_TOKEN", "0" * 64)
    assert f"The Ray cluster at {head.address} refused this machine's authentication token" in error_line(proc)


def test_the_recipe_as_written_with_relative_paths(head, tmp_path, ray_env):
    """`ray start --head …` then `vsrpipe batch IN OUT --engine ray --address …`, run from another folder."""
    ray_env.setenv("RAY_AUTH_TOKEN_PATH", str(head.token))  # the head's token, as on the head node; mode unset
    ray_env.setenv(*LOOPBACK_ONLY)
    footage(tmp_path / "footage")
    ray_env.chdir(tmp_path)
    proc = vsrpipe("batch", "footage", "upscaled", "--engine", "ray", "--address", head.address,
                   "--model", "bicubic", "--scale", "2", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0}
    for i in range(2):
        with av.open(str(tmp_path / "upscaled" / f"clip{i}.mp4")) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == 4 and (frames[0].width, frames[0].height) == (64, 48)
    assert manifest_rows(tmp_path / "upscaled") == [("clip0.mp4", "done"), ("clip1.mp4", "done")]
    assert not any(head.cwd.iterdir())  # nothing resolved against the folder `ray start` ran in


def test_a_batch_without_address_starts_its_instance_on_loopback(monkeypatch):
    """--engine ray without --address starts Ray through init_local, whose node listens on 127.0.0.1."""
    import vsr_pipeline.batch.ray_engine as ray_engine

    assert not ray.is_initialized()
    started = []
    monkeypatch.setattr(ray_engine, "init_local", lambda **kw: started.append(kw))
    ray_engine.connect(None)
    assert started == [{}]
    monkeypatch.undo()
    before = ray._private.ray_constants.ENABLE_RAY_CLUSTER
    ray_engine.init_local(num_cpus=1)
    try:
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
        assert ray._private.ray_constants.ENABLE_RAY_CLUSTER == before  # restored for anything else in the process
    finally:
        ray.shutdown()
