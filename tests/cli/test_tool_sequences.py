"""`vsrpipe evaluate`, `estimate-kernel` and `degrade` with image sequences (issue 25), through the CLI.

Every sequence is checked against the same frames in a lossless FFV1 video (RGB planes,
read back exactly): whichever way the frames come in, the scores, the kernel and the
degraded frames must be the same. Frames are the ramps of ``test_sequences`` (8- and
16-bit PNG); the kernel is read from blurred noise, which gives the spectral fit
something to see. Every refusal checks its sentence and that nothing was left behind.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clips import write_rgb
from test_sequences import H, W, _empty, _missing, _mixed_sizes, everything, ramp_frame, write_ramps
from vsr_pipeline.cli import main
from vsr_pipeline.metrics import psnr

N = 4  # frames per clip


def vsrpipe(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def ramps(dtype) -> list[np.ndarray]:
    """The frames write_ramps writes, as RGB arrays of ``dtype``."""
    return [ramp_frame(k) if dtype == np.uint16 else (ramp_frame(k) // 257).astype(np.uint8) for k in range(N)]


def write_ffv1(path: Path, frames: list[np.ndarray]) -> Path:
    """A lossless FFV1 video of RGB ``frames`` at 25 fps (uint8: bgr0, uint16: gbrp16le planes)."""
    return write_rgb(path, frames, "ffv1", "gbrp16le" if frames[0].dtype == np.uint16 else "bgr0")


def write_pngs(folder: Path, frames: list[np.ndarray], first: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, rgb in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{first + k:06d}.png"), np.ascontiguousarray(rgb[..., ::-1]))
    return folder


def read_pngs(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., ::-1] for p in sorted(folder.iterdir())]


def decode(path: Path, fmt: str) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [f.to_ndarray(format=fmt) for f in c.decode(s)], s.average_rate


@pytest.fixture
def clips(tmp_path) -> dict[str, Path]:
    """The ramps as 8- and 16-bit PNG sequences (frames 1-4) and as FFV1 videos at 25 fps."""
    write_ramps(tmp_path / "f16", range(1, N + 1))
    write_ramps(tmp_path / "f8", range(1, N + 1), dtype=np.uint8)
    return {
        "f16": tmp_path / "f16", "f8": tmp_path / "f8",
        "v16": write_ffv1(tmp_path / "v16.mkv", ramps(np.uint16)), "v8": write_ffv1(tmp_path / "v8.mkv", ramps(np.uint8)),
    }


# evaluate ------------------------------------------------------------------------------

def scores(out: Path, ref: Path, *extra) -> list[float]:
    r = vsrpipe("evaluate", out, "-r", ref, "--no-perceptual", "--json", "-", "--quiet", *extra)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["matched_frames"] == report["output_frames"] == report["reference_frames"] == N
    return [row["psnr"] for row in report["frames"]]


def test_evaluate_sequences_score_as_the_same_frames_in_videos(clips):
    want = [float(psnr(torch.from_numpy(a / 255.0).permute(2, 0, 1).float(), torch.from_numpy(b / 65535.0).permute(2, 0, 1).float(), crop=4))
            for a, b in zip(ramps(np.uint8), ramps(np.uint16))]  # 8-bit against 16-bit: the rounding only
    videos = scores(clips["v8"], clips["v16"])
    assert videos == pytest.approx(want, abs=1e-6)
    for out, ref in (("f8", "f16"), ("f8", "v16"), ("v8", "f16")):  # a sequence on either side, or both
        assert scores(clips[out], clips[ref]) == pytest.approx(videos, abs=1e-6), (out, ref)
    assert scores(clips["f8"] / "%06d.png", clips["f16"] / "*.png") == pytest.approx(videos, abs=1e-6)


def test_evaluate_a_sequence_takes_the_videos_rate_unless_fps_says_otherwise(clips):
    assert len(scores(clips["f8"], clips["v16"])) == N  # 25 fps from the video: every frame matches
    assert len(scores(clips["f8"], clips["f16"], "--fps", "30")) == N  # two sequences at one rate
    r = vsrpipe("evaluate", clips["f8"], "-r", clips["v16"], "--fps", "12.5", "--no-perceptual", "--json", "-", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)  # at 12.5 fps the sequence's frames 0 and 1 fall on the video's 0 and 2
    assert [(row["frame"], row["reference_frame"]) for row in report["frames"]] == [(0, 0), (1, 2)]
    r = vsrpipe("evaluate", clips["v8"], "-r", clips["v16"], "--fps", "25", "--no-perceptual", "-q")
    assert r.exit_code == 7 and "--fps applies to image-sequence input" in r.output


def test_evaluate_with_reference_start_into_a_sequence(clips, tmp_path):
    write_pngs(tmp_path / "tail", ramps(np.uint8)[2:], first=3)  # frames 3-4 of the clip
    r = vsrpipe("evaluate", tmp_path / "tail", "-r", clips["f16"], "--fps", "10", "--reference-start", "0.2",
                "--no-perceptual", "--json", "-", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert [row["reference_frame"] for row in report["frames"]] == [0, 1] and report["reference_frames"] == 2
    assert [row["psnr"] for row in report["frames"]] == pytest.approx(scores(clips["f8"], clips["f16"])[2:], abs=1e-6)


# estimate-kernel -----------------------------------------------------------------------

def blurred_noise(dtype, n: int = 3, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    top = 255 if dtype == np.uint8 else 65535
    frames = []
    for _ in range(n):
        noise = rng.random((size, size, 3)) * top
        frames.append(cv2.GaussianBlur(noise, (0, 0), 1.6).round().clip(0, top).astype(dtype))
    return frames


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_estimate_kernel_of_a_sequence_is_the_videos(tmp_path, dtype):
    frames = blurred_noise(dtype)
    write_pngs(tmp_path / "lr", frames)
    write_ffv1(tmp_path / "lr.mkv", frames)
    kernels = []
    for src, out in ((tmp_path / "lr.mkv", "kv.npy"), (tmp_path / "lr", "ks.npy"), (tmp_path / "lr" / "%06d.png", "kp.npy")):
        r = vsrpipe("estimate-kernel", src, "--out", tmp_path / out, "--scale", "2")
        assert r.exit_code == 0, r.output
        assert "bicubic" not in r.output and "(frames 0-2)" in r.output, r.output  # a fit, from all three frames
        kernels.append(np.load(tmp_path / out))
    assert np.array_equal(kernels[0], kernels[1]) and np.array_equal(kernels[0], kernels[2])


def test_estimate_kernel_names_a_missing_scene_of_a_sequence(tmp_path):
    write_pngs(tmp_path / "lr", blurred_noise(np.uint8))
    r = vsrpipe("estimate-kernel", tmp_path / "lr", "--out", tmp_path / "k.npy", "--scene", "1")
    assert r.exit_code == 7 and f"--scene 1 does not exist: {tmp_path / 'lr'} has 1 scene(s)" in r.output
    assert not (tmp_path / "k.npy").exists()


# degrade -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", ["8", "16"])
def test_degrade_a_sequence_to_a_sequence_as_from_the_video(clips, tmp_path, depth):
    for src, dst in (("v" + depth, "from_video"), ("f" + depth, "from_frames")):
        r = vsrpipe("degrade", clips[src], tmp_path / dst / "%06d.png", "--scale", "2", "-q")
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "from_frames").iterdir())
    assert names == [f"{n:06d}.png" for n in range(1, N + 1)]  # the input's numbers (a video's count from 1)
    a, b = read_pngs(tmp_path / "from_video"), read_pngs(tmp_path / "from_frames")
    assert len(a) == len(b) == N
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype == (np.uint8 if depth == "8" else np.uint16) and x.shape == (H // 2, W // 2, 3)
        assert np.array_equal(x, y)
        assert np.all(y[..., 2] == ramps(y.dtype.type)[k][0, 0, 2])  # a constant plane stays exact


def test_degrade_a_sequence_to_a_video_needs_fps_and_matches_the_video(clips, tmp_path):
    r = vsrpipe("degrade", clips["f16"], tmp_path / "lr.mkv", "--scale", "2", "-q")
    assert r.exit_code == 7 and "has no frame rate of its own; give one with --fps" in r.output
    assert not (tmp_path / "lr.mkv").exists()
    common = ["--scale", "2", "--codec", "ffv1", "--pix-fmt", "rgb48le", "-q"]
    assert vsrpipe("degrade", clips["f16"], tmp_path / "lr.mkv", "--fps", "25", *common).exit_code == 0
    assert vsrpipe("degrade", clips["v16"], tmp_path / "lr_v.mkv", *common).exit_code == 0
    (a, rate_a), (b, rate_b) = decode(tmp_path / "lr.mkv", "rgb48le"), decode(tmp_path / "lr_v.mkv", "rgb48le")
    assert rate_a == rate_b == 25 and len(a) == len(b) == N
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert vsrpipe("degrade", clips["f16"], tmp_path / "lr24.mkv", "--fps", "24", *common).exit_code == 0
    assert decode(tmp_path / "lr24.mkv", "rgb48le")[1] == 24  # the rate is --fps's


def test_degrade_a_section_of_a_sequence_keeps_its_numbers(clips, tmp_path):
    r = vsrpipe("degrade", clips["f8"], tmp_path / "o" / "%04d.png", "--scale", "2", "--fps", "10", "--start", "0.1", "--duration", "0.2", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0002.png", "0003.png"]


def test_degrade_refuses_video_options_for_a_sequence_output(clips, tmp_path):
    r = vsrpipe("degrade", clips["f8"], tmp_path / "o" / "%06d.png", "--scale", "2", "--crf", "20")
    assert r.exit_code == 7 and "--crf applies to video output, not to the image sequence" in r.output
    assert not (tmp_path / "o").exists()


# refusals ------------------------------------------------------------------------------

BAD = [
    (_missing, "is missing frame 3 (it has '000002.png' and then '000004.png'); restore the missing frames"),
    (_empty, "holds no image files"),
    (_mixed_sizes, "is 34x24 but the sequence's first frame is 32x24; every frame must have one size."),
]

COMMANDS = {
    "evaluate-out": lambda t, f: ["evaluate", f, "-r", t / "ref.mkv", "--no-perceptual", "--json", t / "s.json", "--csv", t / "s.csv"],
    "evaluate-reference": lambda t, f: ["evaluate", t / "ref.mkv", "-r", f, "--no-perceptual", "--json", t / "s.json"],
    "estimate-kernel": lambda t, f: ["estimate-kernel", f, "--out", t / "k.npy", "--png", t / "k.png"],
    "degrade-to-sequence": lambda t, f: ["degrade", f, t / "o" / "%06d.png", "--scale", "2"],
    "degrade-to-video": lambda t, f: ["degrade", f, t / "lr.mkv", "--scale", "2", "--fps", "25"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("make,sentence", BAD, ids=["missing-frame", "empty-folder", "mixed-sizes"])
def test_a_bad_sequence_is_one_sentence_and_leaves_nothing(tmp_path, command, make, sentence):
    write_ffv1(tmp_path / "ref.mkv", ramps(np.uint16)[:3])
    make(tmp_path / "f")
    before = everything(tmp_path)
    r = vsrpipe(*COMMANDS[command](tmp_path, tmp_path / "f"), "--quiet")
    assert r.exit_code == 3, r.output
    message = r.output.strip().removeprefix("Error: ")
    assert sentence in message and "Traceback" not in r.output and message.count("\n") == 0, r.output
    assert everything(tmp_path) == before  # no output, no hidden temporary file or folder


# compare -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", ["8", "16"])
def test_compare_reads_frame_n_of_a_sequence_as_of_the_video(clips, depth):
    from vsr_pipeline.evaluate import load_frame

    seq, video = clips[f"f{depth}"], clips[f"v{depth}"]
    for k in range(N):
        assert torch.equal(load_frame(seq / "%06d.png", k), load_frame(video, k)), k
    assert not torch.equal(load_frame(seq, 1), load_frame(seq, 2))  # the ramps differ frame to frame


def test_compare_a_sequence_against_a_video_reference(clips, tmp_path):
    fig = tmp_path / "fig.png"
    same = vsrpipe("compare", clips["f8"], "-r", clips["v8"], "--frame", 2, "--crop", "0,0,16,12", "-o", fig)
    assert same.exit_code == 0 and fig.is_file(), same.output
    other = vsrpipe("compare", clips["f8"], "-r", clips["v8"], "--frame", 2, "--reference-frame", 1, "--crop", "0,0,16,12", "-o", fig, "-y")
    assert other.exit_code == 0, other.output
    assert "f8: PSNR inf dB, SSIM 1.0000" in same.output, same.output  # frame 2 of both: the same picture
    assert "PSNR inf" not in other.output and "f8: PSNR " in other.output, other.output


def test_compare_names_a_frame_beyond_a_sequences_end_and_leaves_nothing(clips, tmp_path):
    r = vsrpipe("compare", clips["f8"], "--frame", N, "--crop", "0,0,8,8", "-o", tmp_path / "fig.png")
    assert r.exit_code == 3, r.output
    assert f"Frame {N} is beyond the end of {str(clips['f8'])!r}, which has {N} images (frames 0 to {N - 1})." in r.output
    assert not (tmp_path / "fig.png").exists()


@pytest.mark.parametrize("make,sentence", BAD[:2], ids=["missing-frame", "empty-folder"])
def test_compare_refuses_a_bad_sequence_in_one_sentence(tmp_path, make, sentence):
    make(tmp_path / "f")
    r = vsrpipe("compare", tmp_path / "f", "--crop", "0,0,8,8", "-o", tmp_path / "fig.png")
    assert r.exit_code == 3 and sentence in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "fig.png").exists()
