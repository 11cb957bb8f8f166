"""The VapourSynth filter on a real core: formats, props, order independence, bad input, vspipe."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs

from vsr_pipeline.vapoursynth import enhance, source

from clips import make_clip, pattern

core = vs.core
ROOT = Path(__file__).resolve().parents[2]


def rgb_clip(n: int = 8, size=(48, 32), cut_at: int | None = None) -> vs.VideoNode:
    """An RGBS clip of the moving test pattern; a different pattern from ``cut_at`` on (a scene cut)."""
    w, h = size
    blank = core.std.BlankClip(width=w, height=h, format=vs.RGBS, length=n, fpsnum=25, fpsden=1)

    def paint(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        i, out = n, f.copy()
        seed = 0 if cut_at is None or i < cut_at else 97
        img = pattern(i, w, h, seed=seed).astype(np.float32) / 255
        if seed:
            img = 1 - img[:, ::-1]
        for p in range(3):
            np.copyto(np.asarray(out[p]), img[..., p])
        out.props["MyProp"] = i * 10
        return out

    return core.std.ModifyFrame(blank, blank, paint)


def planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.asarray(frame[p]).copy() for p in range(frame.format.num_planes)]


FORMATS = [vs.YUV420P8, vs.YUV422P10, vs.YUV444P16, vs.GRAY8, vs.GRAY16, vs.RGB24, vs.RGB48, vs.RGBS, vs.RGBH]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: core.get_video_format(f).name)
def test_every_accepted_format_keeps_family_depth_props_and_flat_values(fmt):
    fmtobj = core.get_video_format(fmt)
    peak = (1 << fmtobj.bits_per_sample) - 1 if fmtobj.sample_type == vs.INTEGER else 1.0
    colour = [0.4 * peak, 0.45 * peak, 0.55 * peak][: fmtobj.num_planes]
    if fmtobj.sample_type == vs.INTEGER:
        colour = [round(c) for c in colour]
    clip = core.std.BlankClip(width=40, height=24, format=fmt, length=3, fpsnum=30000, fpsden=1001, color=colour)
    clip = core.std.SetFrameProps(clip, MyProp=7, _SARNum=4, _SARDen=3)
    out = enhance(clip, model="bicubic", scale=2, scene_threshold=0)
    assert (out.width, out.height, out.num_frames) == (80, 48, 3)
    assert out.format.id == fmt and (out.fps.numerator, out.fps.denominator) == (30000, 1001)
    f = out.get_frame(1)
    assert f.props["MyProp"] == 7 and (f.props["_SARNum"], f.props["_SARDen"]) == (4, 3)
    assert (f.props["_DurationNum"], f.props["_DurationDen"]) == (1001, 30000)
    # a flat picture stays flat and keeps its value through the colour path and back
    tol = 1.0 if fmtobj.sample_type == vs.INTEGER and fmtobj.bits_per_sample == 8 else 0.01 * peak
    for p, value in zip(planes(f), colour):
        assert np.abs(p.astype(np.float64) - value).max() <= tol


def test_rgbs_on_request_and_real_pixels():
    clip = rgb_clip(n=3)
    out = enhance(clip, model="bicubic", scale=2, scene_threshold=0, output="RGBS")
    assert out.format.id == vs.RGBS
    from vsr_pipeline.degrade.resize import imresize

    src = torch.from_numpy(np.stack(planes(clip.get_frame(2))))[None]  # (1, 3, H, W)
    want = imresize(src, scale=2).clamp(0, 1)[0].numpy()
    got = np.stack(planes(out.get_frame(2)))
    assert np.abs(got - want).max() < 1e-5  # frame 2's own pixels, not a neighbour's


def request(node: vs.VideoNode, order: list[int], threads: int) -> dict[int, list[np.ndarray]]:
    """Ask for the frames in ``order`` (all at once, asynchronously, when threads > 1)."""
    core.num_threads = threads
    if threads == 1:
        return {i: planes(node.get_frame(i)) for i in order}
    futures = {i: node.get_frame_async(i) for i in order}
    return {i: planes(fut.result()) for i, fut in futures.items()}


@pytest.mark.parametrize("adapt", ["none", "online"])
def test_output_is_bit_identical_in_any_order_and_thread_count(tiny_weights, adapt):
    clip = rgb_clip(n=9, cut_at=5)
    opts = dict(model=str(tiny_weights), scale=2, adapt=adapt, scene_threshold=20)
    if adapt == "online":
        opts.update(steps_per_frame=2, crop=12, guard=0.0)  # adapt whatever the probe says: the subject is order
    forward = list(range(9))
    shuffled = forward[:]
    random.Random(3).shuffle(shuffled)
    threads_before = core.num_threads
    try:
        reference = request(enhance(clip, **opts), forward, 1)
        for order, threads in ((forward[::-1], 1), (shuffled, 1), (forward, 2), (shuffled, 2)):
            got = request(enhance(clip, **opts), order, threads)  # a fresh filter: no state from the last order
            for i in forward:
                assert all(np.array_equal(a, b) for a, b in zip(got[i], reference[i])), (order, threads, i)
    finally:
        core.num_threads = threads_before
    if adapt == "online":  # adaptation did something: frames differ from the unadapted network's
        plain = request(enhance(clip, model=str(tiny_weights), scale=2, scene_threshold=20), [6], 1)
        assert not np.array_equal(plain[6][0], reference[6][0])


def test_same_frames_as_the_cli(tmp_path, tiny_weights):
    from click.testing import CliRunner

    from vsr_pipeline.cli import main
    from vsr_pipeline.io.reader import VideoReader

    c = make_clip(tmp_path / "in.mp4", n=6, size=(48, 32))
    out = tmp_path / "cli.mkv"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(out), "--model", str(tiny_weights), "-s", "2",
                                  "--codec", "ffv1", "--pix-fmt", "yuv444p", "-q"])
    assert r.exit_code == 0, r.output
    cli = [f.rgb.numpy() for f in VideoReader(out)]
    # through our own reader the input frames are the CLI's, so only the CLI's 8-bit encode differs
    vsout = enhance(source(c.path), model=str(tiny_weights), scale=2, output="RGBS")
    assert vsout.num_frames == len(cli) == 6
    for i, want in enumerate(cli):
        got = np.stack(planes(vsout.get_frame(i)))
        assert np.abs(got - want).max() < 3 / 255 and np.abs(got - want).mean() < 0.6 / 255
    # through BestSource the colour path is zimg's (chroma siting, rounding): close, not equal
    bs = enhance(core.bs.VideoSource(str(c.path)), model=str(tiny_weights), scale=2, output="RGBS")
    diff = np.stack(planes(bs.get_frame(3))) - cli[3]
    assert 10 * np.log10(1 / np.mean(diff**2)) > 35


def bad(fn, match: str) -> None:
    with pytest.raises(vs.Error, match=match) as info:
        fn()
    assert str(info.value).startswith("enhance: ") or str(info.value).startswith("source: ")


def test_bad_input_is_one_sentence():
    ok = core.std.BlankClip(width=40, height=24, format=vs.YUV420P8, length=2)
    bad(lambda: enhance("clip.mp4"), "must be a VapourSynth video clip")
    mixed = core.std.Splice([ok, core.std.BlankClip(width=40, height=24, format=vs.YUV444P8, length=2)], mismatch=True)
    bad(lambda: enhance(mixed), "variable format")
    sizes = core.std.Splice([ok, core.std.BlankClip(width=48, height=24, format=vs.YUV420P8, length=2)], mismatch=True)
    bad(lambda: enhance(sizes), "variable frame size")
    bad(lambda: enhance(core.std.BlankClip(format=vs.YUV444PS, length=1)), "format YUV444PS is not supported")
    bad(lambda: enhance(ok, model="bicubic", steps_per_frames=3), "unknown option")
    odd = core.std.BlankClip(width=42, height=24, format=vs.YUV420P8, length=2)
    bad(lambda: enhance(odd, model="bicubic", scale=1.5), "63x36, which YUV420P8 cannot hold")
    bad(lambda: enhance(ok, model="bicubic", mc_passes=4), "--mc-passes applies only with --adapt masked")
    bad(lambda: enhance(ok, model="no-such-model"), "Unknown model")
    bad(lambda: enhance(ok, model="bicubic", output="YUV"), "output must be")
    bad(lambda: source("/no/such/file.mp4"), "does not exist")


def test_source_reads_our_frames_with_vfr_durations(tmp_path):
    from fractions import Fraction

    from vsr_pipeline.io.reader import VideoReader

    c = make_clip(tmp_path / "vfr.mkv", n=5, size=(32, 24), pts=[0, 40, 120, 160, 280], time_base=Fraction(1, 1000))
    clip = source(c.path)
    assert (clip.width, clip.height, clip.num_frames, clip.format.id) == (32, 24, 5, vs.RGBS)
    durations = [Fraction(clip.get_frame(i).props["_DurationNum"], clip.get_frame(i).props["_DurationDen"]) for i in range(4)]
    assert durations == [Fraction(40, 1000), Fraction(80, 1000), Fraction(40, 1000), Fraction(120, 1000)]
    ours = [f.rgb.numpy() for f in VideoReader(c.path)]
    for i in (3, 0, 4):  # out of order: the reader restarts
        assert np.array_equal(np.stack(planes(clip.get_frame(i))), ours[i])


def test_vspipe_runs_the_example_script(tmp_path):
    c = make_clip(tmp_path / "in.mp4", n=6, size=(32, 24))
    vspipe = Path(sys.executable).with_name("vspipe")
    r = subprocess.run(
        [str(vspipe), "-c", "y4m", "-a", f"input={c.path}", "-a", "model=bicubic", "-a", "scale=2",
         str(ROOT / "examples" / "enhance.vpy"), "-"],
        capture_output=True, timeout=300, cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    header, _, body = r.stdout.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2") and b" W64 " in header and b" H48 " in header
    frames = body.split(b"FRAME\n")
    assert len([x for x in frames if x]) == 6
    assert all(len(x) == 64 * 48 * 3 // 2 for x in frames if x)


def test_estimated_blur_is_the_scenes_first_window_in_any_order(tiny_weights, monkeypatch):
    """With degradation="estimate" each scene's blur is read from the window of its first frame while the filter
    walks the clip, so asking for the last frame first gives the same frames as asking in order."""
    from vsr_pipeline.kernels.base import KernelEstimate

    seen = []

    def fake(frames, scale, config):  # a wider kernel for brighter windows: the window read shows in the output
        seen.append(round(float(frames.mean()), 6))
        r = 1 + int(frames.mean() * 6) % 3
        k = np.ones((2 * r + 1, 2 * r + 1)) / (2 * r + 1) ** 2
        return KernelEstimate(kernel=k, kernel_x2=k, scale=scale)

    monkeypatch.setattr("vsr_pipeline.kernels.estimate.estimate_with", fake)
    clip = rgb_clip(n=9, cut_at=5)
    opts = dict(model=str(tiny_weights), scale=2, adapt="online", degradation="estimate", scene_threshold=20,
                steps_per_frame=2, crop=12, guard=0.0)
    threads_before = core.num_threads
    try:
        forward = request(enhance(clip, **opts), list(range(9)), 1)
        first_pass = list(seen)
        seen.clear()
        backward = request(enhance(clip, **opts), list(range(9))[::-1], 1)
    finally:
        core.num_threads = threads_before
    assert len(first_pass) == 2 and seen == first_pass  # two scenes, each read once, from the same frames
    for i in range(9):
        assert all(np.array_equal(a, b) for a, b in zip(forward[i], backward[i])), i
