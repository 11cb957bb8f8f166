"""`vsrpipe enhance` end to end: the API, the CLI, and every bad input of issue 2."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from resize_right import interp_methods, resize

import vsr_pipeline
from clips import make_clip, make_empty_video, make_still, make_wav, read_back
from vsr_pipeline.cli import main
from vsr_pipeline.io.reader import VideoReader


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def leftovers(folder: Path, keep: set) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_api_bicubic_x2_pixels(tmp_path):
    c = make_clip(tmp_path / "in.mkv", codec="ffv1", pix_fmt="yuv444p", n=4, size=(40, 30))
    out = tmp_path / "out.mkv"
    result = vsr_pipeline.enhance(c.path, out, scale=2, model="bicubic", codec="ffv1", pix_fmt="yuv444p")
    assert result.frames == 4 and result.output_size == (80, 60)
    src = [f.rgb for f in VideoReader(c.path)]
    got = [f.rgb for f in VideoReader(out)]
    for s, g in zip(src, got):
        hwc = s.permute(1, 2, 0).double().numpy()  # resize-right resizes numpy's first two axes
        ref = resize(hwc, scale_factors=2, interp_method=interp_methods.cubic, pad_mode="symmetric", antialiasing=True)
        ref = torch.from_numpy(np.clip(ref, 0, 1)).permute(2, 0, 1)
        # the only differences left are the 8-bit YUV rounding of the output
        assert (g.double() - ref).abs().max().item() < 2.5 / 255


def test_cli_end_to_end_with_audio_subs_vfr(tmp_path):
    from fractions import Fraction

    pts = [0, 40, 80, 120, 200, 240, 280, 400]
    c = make_clip(tmp_path / "in.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000), audio=True, subtitles=True)
    out = tmp_path / "out.mkv"
    r = run_cli("enhance", c.path, out, "--scale", "2", "--model", "bicubic")
    assert r.exit_code == 0, r.output
    back = read_back(out)
    assert back["size"] == (128, 96)
    assert [float(p * back["time_base"]) for p in back["pts"]] == pytest.approx([p / 1000 for p in pts])
    assert back["audio_end"] == pytest.approx(c.audio_seconds, abs=0.04 + 0.03)
    assert back["subtitle_packets"] == 2
    assert "8 frames" in r.output


def test_section_preview(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=50, audio=True)
    out = tmp_path / "out.mp4"
    r = run_cli("enhance", c.path, out, "-s", "2", "--start", "0.4", "--duration", "0.8", "-q")
    assert r.exit_code == 0, r.output
    back = read_back(out)
    assert len(back["pts"]) == 20
    assert float(back["pts"][0] * back["time_base"]) == pytest.approx(0.0)
    assert back["audio_end"] == pytest.approx(0.8, abs=0.05)
    assert r.output == ""  # --quiet


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_awkward_paths(tmp_path, monkeypatch, backend):
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "-in clip ü.mp4", n=3, audio=True)
    r = run_cli("enhance", "--backend", backend, "-s", "2", "--", "-in clip ü.mp4", "-out ä ö.mkv")
    assert r.exit_code == 0, r.output
    assert len(read_back(tmp_path / "-out ä ö.mkv")["pts"]) == 3


def _bad(tmp_path, *args, code, match, keep=()):
    out = tmp_path / "out.mp4"
    r = run_cli("enhance", *args)
    assert r.exit_code == code, r.output
    assert match in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1  # one clear sentence
    assert not out.exists() or out.name in keep
    assert not list(tmp_path.glob(".*partial*"))
    return r


def test_missing_input(tmp_path):
    _bad(tmp_path, tmp_path / "nope.mp4", tmp_path / "out.mp4", code=3, match="does not exist")


def test_text_image_audio_inputs(tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("not a video at all\n" * 20)
    _bad(tmp_path, txt, tmp_path / "out.mp4", code=3, match="is not a video")
    img = make_still(tmp_path / "still.png")
    _bad(tmp_path, img, tmp_path / "out.mp4", code=3, match="still image")
    wav = make_wav(tmp_path / "tone.wav")
    _bad(tmp_path, wav, tmp_path / "out.mp4", code=3, match="no video stream")


def test_zero_frame_video(tmp_path):
    p = make_empty_video(tmp_path / "empty.mkv")
    _bad(tmp_path, p, tmp_path / "out.mp4", code=3, match="no video frames")


def test_truncated_stop_and_skip(tmp_path):
    c = make_clip(tmp_path / "full.mkv", n=40)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(c.path.read_bytes()[: c.path.stat().st_size // 2])
    c.path.unlink()
    _bad(tmp_path, cut, tmp_path / "out.mp4", code=6, match="lost")
    r = run_cli("enhance", cut, tmp_path / "out.mp4", "-s", "2", "--on-error", "skip")
    assert r.exit_code == 0
    assert "lost to damage" in r.output
    assert 0 < len(read_back(tmp_path / "out.mp4")["pts"]) < 40


def test_corrupt_middle_skip(tmp_path):
    c = make_clip(tmp_path / "full.mkv", n=40, options={"threads": "1"})  # the same bytes on every machine
    data = bytearray(c.path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 400] = np.random.default_rng(18).integers(0, 256, 400, dtype=np.uint8).tobytes()  # seeded
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    c.path.unlink()
    r = run_cli("enhance", bad, tmp_path / "out.mp4", "-s", "2", "--on-error", "skip")
    assert r.exit_code == 0, r.output
    n = len(read_back(tmp_path / "out.mp4")["pts"])
    with av.open(str(bad)) as container:
        assert n == len(list(container.decode(video=0)))  # what PyAV itself decodes
    assert 0 < n < 40 and "lost to damage" in r.output  # exact counts: tests/io/test_damage_counts.py


def test_output_is_input(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    r = run_cli("enhance", c.path, c.path, "--overwrite")
    assert r.exit_code == 4 and "is the input file" in r.output
    assert len(read_back(c.path)["pts"]) == 2  # input untouched


def test_output_exists(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    _bad(tmp_path, c.path, out, code=4, match="--overwrite", keep={"out.mp4"})
    assert out.read_bytes() == b"keep me"
    assert run_cli("enhance", c.path, out, "-s", "2", "--overwrite").exit_code == 0
    assert len(read_back(out)["pts"]) == 2


def test_unwritable_output(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    _bad(tmp_path, c.path, tmp_path / "no-such-dir" / "out.mp4", code=4, match="does not exist")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root writes anywhere: use a folder no one can write
            r = run_cli("enhance", c.path, "/proc/out.mp4")
            assert r.exit_code == 4 and "not writable" in r.output
            assert not Path("/proc/out.mp4").exists()
        else:
            _bad(tmp_path, c.path, ro / "out.mp4", code=4, match="not writable")
    finally:
        ro.chmod(0o755)


def test_codec_container_mismatch(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    _bad(tmp_path, c.path, tmp_path / "out.webm", "--codec", "libx264", code=4, match="cannot hold libx264")
    _bad(tmp_path, c.path, tmp_path / "out.mp4", "--pix-fmt", "rgb24", code=4, match="cannot write pixel format")


def test_odd_size_chroma(tmp_path, caplog):
    c = make_clip(tmp_path / "odd.mkv", codec="ffv1", size=(321, 181), n=2)
    out = tmp_path / "out.mp4"
    r = run_cli("enhance", c.path, out, "-s", "1")
    assert r.exit_code == 0
    assert "padded to 322x182" in caplog.text  # a warning on stderr in a real terminal
    assert read_back(out)["size"] == (322, 182)
    r = run_cli("enhance", c.path, tmp_path / "out.mkv", "-s", "1", "--pix-fmt", "yuv444p")
    assert read_back(tmp_path / "out.mkv")["size"] == (321, 181)


def test_unknown_model(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=2)
    _bad(tmp_path, c.path, tmp_path / "out.mp4", "--model", "nosuch", code=5, match="available models: bicubic")


def test_interrupt_in_api_leaves_nothing(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=30)

    def stop(done, expected):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vsr_pipeline.enhance(c.path, tmp_path / "out.mp4", scale=2, progress=stop)
    assert leftovers(tmp_path, {"in.mp4"}) == []


def test_ctrl_c_exit_130(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=400, size=(160, 120))
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr_pipeline.cli", "enhance", str(c.path), str(out), "-s", "4", "--preset", "slow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a test runner started in the background of a non-interactive shell has SIGINT ignored, and the
        # child would inherit that (Python then installs no Ctrl-C handler): give it the default, as a terminal does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started, seen = time.time(), None
    while seen is None and time.time() < started + 120 and proc.poll() is None:
        if list(tmp_path.glob(".*partial*")):
            seen = time.time() - started
        time.sleep(0.05)
    time.sleep(0.3)
    running = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # Say which precondition failed, so that a slow machine is told apart from a lost Ctrl-C.
    assert seen is not None, f"no partial output appeared in {time.time() - started:.0f} s: {err}"
    assert running, f"the run ended before the signal (partial seen after {seen:.1f} s): {err}"
    assert proc.returncode == 130, f"SIGINT sent {seen + 0.3:.1f} s in, while running: {err}"
    assert "Interrupted" in err and "Traceback" not in err
    assert leftovers(tmp_path, {"in.mp4"}) == []


def test_version_and_models():
    r = run_cli("--version")
    assert r.exit_code == 0 and vsr_pipeline.__version__ in r.output
    r = run_cli("models")
    assert r.exit_code == 0 and "bicubic" in r.output and "vsr-pipeline" in r.output


def test_unwritable_output_as_a_non_root_user(tmp_path):
    """The `os.access` check itself, as an ordinary user (root passes every access check).

    As root the command runs in a subprocess switched to ``nobody`` (uid 65534); where that is
    impossible the test says so and skips.
    """
    import shutil
    import tempfile

    uid = os.geteuid()
    if uid == 0:
        try:
            import pwd

            uid, gid = pwd.getpwnam("nobody")[2:4]
        except (ImportError, KeyError):
            pytest.skip("running as root and there is no 'nobody' user to drop to")
    else:
        gid = os.getegid()
    work = Path(tempfile.mkdtemp(prefix="vsrpipe-nonroot-"))
    try:
        work.chmod(0o755)
        c = make_clip(work / "in.mp4", n=2)
        c.path.chmod(0o644)
        ro = work / "ro"
        ro.mkdir(mode=0o755)  # owned by root: not writable for nobody
        home = work / "home"
        home.mkdir()
        os.chown(home, uid, gid) if os.geteuid() == 0 else None
        exe = Path(sys.executable).parent / "vsrpipe"

        def drop():
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)

        try:
            proc = subprocess.run([str(exe), "enhance", str(c.path), str(ro / "out.mp4"), "-m", "bicubic", "-s", "2"],
                                  capture_output=True, text=True, timeout=120, preexec_fn=drop,
                                  env={**os.environ, "HOME": str(home)}, cwd=work)
        except (PermissionError, subprocess.SubprocessError) as exc:
            pytest.skip(f"running as root, and uid {uid} cannot start {exe} ({exc}; e.g. a Python under /root): "
                        "the non-root os.access check is not exercised here")
        if "Permission denied" in proc.stderr and "python" in proc.stderr.lower() and proc.returncode != 4:
            pytest.skip(f"uid {uid} cannot run the virtual environment: {proc.stderr.strip()[:200]}")
        assert proc.returncode == 4, proc.stderr
        assert "not writable" in proc.stderr
        assert sorted(p.name for p in ro.iterdir()) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)
