"""Reproduce the batch/resume faults of issue 24 through the command line and say PASS or FAIL for each.

    .venv/bin/python scripts/check_faults.py            # every check (about a minute on two cores)
    .venv/bin/python scripts/check_faults.py 1 7        # only these items

Each check runs `vsrpipe` in a fresh process on small clips made in a temporary folder,
the way a user would, and looks at what is left on disk: the exit code, the message, and
that nothing was lost or published half-made. Exit status: the number of checks that failed.

1. `batch --report` naming an input or an output is refused; the video stays a video.
2. A truncated finished segment is encoded again on `--resume`; the output has every frame.
4. An input replaced while its segments run: that file fails (exit 3), nothing is published.
6. `enhance --resume` after that recorded failure retries it by default.
7. `kill -9` of a `batch --jobs 2` driver stops its workers; nothing is published afterwards.
13. The Ray recipe of docs/batch.md, as written, on a head bound to 127.0.0.1 (needs Ray).
15. HDR10 mastering-display and content-light-level metadata survive `enhance` (needs libx265).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CLI = [sys.executable, "-c", "import sys; from vsr_pipeline.cli import main; main(sys.argv[1:], prog_name='vsrpipe')"]
FAST = ["--model", "bicubic", "-s", "2", "--codec", "ffv1", "-q"]


def vsrpipe(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def clip(path: Path, n: int, size=(64, 48), seed: int = 0, **stream) -> Path:
    """A clip of ``n`` moving gradient frames (``seed`` changes the pictures)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        s = c.add_stream(stream.pop("codec", "libx264"), rate=25, options=stream.pop("options", {}))
        s.width, s.height, s.pix_fmt = w, h, stream.pop("pix_fmt", "yuv420p")
        for key, value in stream.items():
            setattr(s.codec_context, key, value)
        for i in range(n):
            rgb = np.stack([(xx * 3 + i * 5 + seed * 40) % 256, (yy * 4 + i * 3) % 256,
                            128 + 60 * np.sin((xx + yy + i + seed) / 9.0)], -1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def check_1(tmp: Path) -> str | None:
    src = tmp / "in"
    src.mkdir()
    clip(src / "c1.mp4", 6)
    clip(src / "c2.mp4", 6, seed=1)
    if vsrpipe("batch", src, tmp / "out", *FAST).returncode:
        return "the first batch failed"
    for victim in (src / "c1.mp4", tmp / "out" / "c2.mp4"):
        before = victim.read_bytes()
        r = vsrpipe("batch", src, tmp / "out", *FAST, "--report", victim, "--overwrite")
        if r.returncode != 4 or "reads or writes" not in r.stderr or victim.read_bytes() != before:
            return f"--report {victim.name}: exit {r.returncode}, {r.stderr.strip()!r}"
    return None


def _resume_killed_at_join(tmp: Path, n: int = 60):
    src = clip(tmp / "src.mkv", n, seed=2)
    out = tmp / "out.mkv"
    r = vsrpipe("enhance", src, out, *FAST, "--resume", "--segment-frames", "20", env={"VSRPIPE_BATCH_FAULT": "join"})
    return src, out, tmp / ".out.mkv.vsrpipe", r


def check_2(tmp: Path) -> str | None:
    src, out, work, killed = _resume_killed_at_join(tmp)
    if killed.returncode != -9:
        return f"the kill point did not fire (exit {killed.returncode})"
    seg = work / "segments" / "seg-00001.mkv"
    seg.write_bytes(seg.read_bytes()[: seg.stat().st_size * 2 // 3])
    r = vsrpipe("enhance", src, out, *FAST, "--resume", "--segment-frames", "20")
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()!r}"
    got = frames(out)
    return None if got == 60 else f"{got} frames published, 60 expected"


def check_4_and_6(tmp: Path) -> tuple[str | None, str | None]:
    """Item 4 (the replaced input fails, nothing published), then item 6 (the resumed failure is retried)."""
    src = clip(tmp / "src.mkv", 90, size=(128, 96), seed=3)
    other = clip(tmp / "other.mkv", 90, size=(128, 96), seed=4)
    out = tmp / "out.mkv"
    run = subprocess.Popen([*CLI, "enhance", str(src), str(out), "--model", "vsrnet-x4", "--codec", "ffv1", "-q",
                            "--resume", "--segment-frames", "15"], stderr=subprocess.PIPE, text=True)
    manifest = tmp / ".out.mkv.vsrpipe" / "manifest.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        try:
            with sqlite3.connect(manifest) as db:
                if db.execute("select count(*) from segments").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    tmp_copy = tmp / ".swap.mkv"
    shutil.copy(other, tmp_copy)
    os.replace(tmp_copy, src)  # another clip, same timing, under the input's name
    _, err = run.communicate(timeout=300)
    item4 = None
    if run.returncode != 3 or "changed while it was being upscaled" not in err or out.exists():
        item4 = f"exit {run.returncode}, output {'published' if out.exists() else 'absent'}: {err.strip()[-200:]!r}"
    r = vsrpipe("enhance", src, out, "--model", "bicubic", "--codec", "ffv1", "-q", "--resume", "--segment-frames", "15")
    item6 = None
    if r.returncode != 0 or "--retry-failed" in r.stderr or frames(out) != 90:
        item6 = f"exit {r.returncode}: {r.stderr.strip()!r}"
    return item4, item6


def _tree(pid: int) -> set[int]:
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def check_7(tmp: Path) -> str | None:
    src = tmp / "in"
    src.mkdir()
    for i in range(4):
        clip(src / f"c{i}.mp4", 80, size=(96, 64), seed=i)
    out = tmp / "out"
    driver = subprocess.Popen([*CLI, "batch", str(src), str(out), "--jobs", "2", "--model", "vsrnet-x4",
                               "--segment-frames", "0", "--progress", "json"], stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True)
    for line in driver.stderr:
        if line.startswith("{") and json.loads(line).get("frames", 0) > 0:
            break
    workers = _tree(driver.pid)
    before = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.2)
    left = [p for p in workers if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    after = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    temps = [p.name for p in out.iterdir() if ".partial" in p.name]
    if left:
        return f"{len(left)} worker processes outlived the driver by 20 s"
    if temps:
        return f"temporary files left behind: {temps}"
    return None if after == before else f"published after the driver died: {sorted(set(after) - set(before))}"


def check_13(tmp: Path) -> str | None:
    """docs/batch.md's localhost recipe, as written: relative paths, run from another folder than the head's."""
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        return "skip: Ray is not installed (pip install 'vsr-pipeline[ray]')"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp / "head").mkdir()
    (tmp / "work" / "footage").mkdir(parents=True)
    clip(tmp / "work" / "footage" / "a.mp4", 8)
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    head = subprocess.Popen([str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                             f"--temp-dir={tmp / 'ray'}", "--block"], cwd=tmp / "head", env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            return "the Ray head did not start within 120 s"
        r = vsrpipe("batch", "footage", "upscaled", "--engine", "ray", "--address", f"127.0.0.1:{port}",
                    "--model", "bicubic", "-s", "2", "-q", cwd=tmp / "work", env=env, timeout=300)
        out = tmp / "work" / "upscaled" / "a.mp4"
        if r.returncode != 0 or not out.exists() or frames(out) != 8:
            return f"exit {r.returncode}: {r.stderr.strip()[-300:]!r}"
        return None
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # this head only; `ray stop` would stop every instance here
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def check_15(tmp: Path) -> str | None:
    if "libx265" not in av.codecs_available:
        return "skip: this FFmpeg has no libx265"
    src = clip(tmp / "hdr.mkv", 6, codec="libx265", pix_fmt="yuv420p10le", color_primaries=9, color_trc=16,
               colorspace=9, options={"x265-params": "log-level=error:hdr10=1:master-display="
                                      "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400"})
    want = _hdr(src)
    if not want[0] or not want[1]:
        return "could not make an HDR10 test clip with this libx265"
    for backend in ("pyav", "ffmpeg"):
        out = tmp / f"up-{backend}.mkv"
        r = vsrpipe("enhance", src, out, "--model", "bicubic", "-s", "2", "--codec", "libx265", "--backend", backend, "-q")
        if r.returncode or _hdr(out) != want:
            return f"--backend {backend}: exit {r.returncode}, side data {_hdr(out) if out.exists() else None} != {want}"
    return None


def _hdr(path: Path):
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        kinds = {str(getattr(k, "name", k)).upper(): bytes(frame.side_data[k]) for k in frame.side_data.keys()}
    return kinds.get("MASTERING_DISPLAY_METADATA"), kinds.get("CONTENT_LIGHT_LEVEL")


def main(argv: list[str]) -> int:
    wanted = set(argv) or {"1", "2", "4", "6", "7", "13", "15"}
    results: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="vsrpipe-faults-") as root:
        root = Path(root)
        for item, check in (("1", check_1), ("2", check_2), ("7", check_7), ("13", check_13), ("15", check_15)):
            if item in wanted:
                (root / item).mkdir()
                results[item] = check(root / item)
        if wanted & {"4", "6"}:
            (root / "4").mkdir()
            results["4"], results["6"] = check_4_and_6(root / "4")
    failed = 0
    for item in sorted(results, key=int):
        verdict = results[item]
        status = "PASS" if verdict is None else "SKIP" if verdict.startswith("skip:") else "FAIL"
        failed += status == "FAIL"
        print(f"item {item:>2}: {status}{'' if verdict is None else '  ' + verdict}")
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
