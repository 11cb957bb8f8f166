"""`vsrpipe enhance` with image sequences in and out (issue 25), through the CLI.

Frames are written in tmp_path, run through the command with the bicubic model, read
back and checked against a reference computed here: on a linear ramp, bicubic (Keys,
a = -0.5) upscaling returns the ramp sampled at the output pixel centres, so interior
samples are known exactly without running any resizer. Every refusal checks its
sentence, its exit code, and that nothing (not even a hidden temporary) was left.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from clips import make_clip
from vsr_pipeline.cli import main

W, H = 32, 24


def ramp_frame(i: int) -> np.ndarray:
    """Frame i as RGB uint16 (H, W, 3): R grows with x, G with y, B is 12345 + 1001·i (no 8-bit value)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    rgb = np.stack([1003 + 1501 * x, 2011 + 1499 * y, np.full_like(x, 12345 + 1001 * i)], axis=-1)
    return rgb.round().astype(np.uint16)


def write_ramps(folder: Path, numbers, *, ext=".png", dtype=np.uint16, fmt="{:06d}") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(numbers):
        rgb = ramp_frame(k)
        if dtype == np.uint8:
            rgb = (rgb // 257).astype(np.uint8)
        assert cv2.imwrite(str(folder / (fmt.format(n) + ext)), np.ascontiguousarray(rgb[..., ::-1]))


def run(*args: str):
    return CliRunner().invoke(main, ["enhance", *map(str, args), "--model", "bicubic", "--quiet"])


def everything(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def expected_ramp(k: int, scale: int = 2) -> np.ndarray:
    """The exact ×scale bicubic output of ramp_frame(k) at interior pixels (float, 16-bit units)."""
    hx = (np.arange(W * scale) + 0.5) / scale - 0.5  # output pixel centres in input coordinates
    hy = (np.arange(H * scale) + 0.5) / scale - 0.5
    yy, xx = np.meshgrid(hy, hx, indexing="ij")
    return np.stack([1003 + 1501 * xx, 2011 + 1499 * yy, np.full_like(xx, 12345 + 1001 * k)], axis=-1)


def test_16_bit_png_sequence_in_gives_16_bit_png_sequence_out(tmp_path):
    write_ramps(tmp_path / "frames", range(1001, 1005))
    r = run(tmp_path / "frames" / "%06d.png", tmp_path / "out" / "%06d.png", "--scale", "2")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["001001.png", "001002.png", "001003.png", "001004.png"]  # the input's numbering
    m = 3 * 2  # interior: the 4-tap kernel never reaches the replicated border
    for k, name in enumerate(names):
        got = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and got.shape == (H * 2, W * 2, 3)
        rgb = got[..., ::-1].astype(np.float64)
        want = expected_ramp(k)
        assert np.abs(rgb[m:-m, m:-m] - want[m:-m, m:-m]).max() <= 1.0  # float32 inside, rounded once
        assert np.all(rgb[..., 2] == 12345 + 1001 * k)  # a constant stays exact at 16 bits, borders included


def test_folder_to_video_with_fps(tmp_path):
    write_ramps(tmp_path / "frames", range(1, 6))
    r = run(tmp_path / "frames", tmp_path / "out.mkv", "--fps", "24", "--scale", "2")
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "out.mkv")) as c:
        s = c.streams.video[0]
        assert s.average_rate == 24
        assert s.codec_context.pix_fmt == "yuv420p10le"  # 16-bit input: more than 8 bits out
        frames = list(c.decode(s))
    assert len(frames) == 5
    assert [round(float(f.pts * f.time_base) * 24) for f in frames] == [0, 1, 2, 3, 4]
    for k, f in enumerate(frames):
        assert (f.width, f.height) == (W * 2, H * 2)
        rgb = f.to_ndarray(format="rgb48le").astype(np.float64)
        assert abs(rgb[8:-8, 8:-8, 2].mean() - (12345 + 1001 * k)) < 400  # lossy, but each frame in its place


def test_8_bit_tiff_glob_to_tiff_keeps_8_bits_and_numbers(tmp_path):
    write_ramps(tmp_path / "f", [7, 8, 9], ext=".tif", dtype=np.uint8, fmt="shot_{:04d}")
    r = run(tmp_path / "f" / "*.tif", tmp_path / "o" / "up_%04d.tif", "--scale", "2")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["up_0007.tif", "up_0008.tif", "up_0009.tif"]
    for k, name in enumerate(names):
        got = cv2.imread(str(tmp_path / "o" / name), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint8 and got.shape == (H * 2, W * 2, 3)
        assert np.all(got[..., 0] == (12345 + 1001 * k) // 257)  # blue, OpenCV order


def test_video_to_sequence_numbers_from_1(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(W, H))
    r = run(clip.path, tmp_path / "out" / "%06d.png", "--scale", "2")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["000001.png", "000002.png", "000003.png"]
    got = cv2.imread(str(tmp_path / "out" / names[0]), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint8 and got.shape == (H * 2, W * 2, 3)


def test_section_keeps_input_numbers(tmp_path):
    write_ramps(tmp_path / "f", range(1, 11))
    r = run(tmp_path / "f", tmp_path / "o" / "%03d.png", "--scale", "2", "--fps", "10", "--start", "0.2", "--duration", "0.3")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["003.png", "004.png", "005.png"]
    got = cv2.imread(str(tmp_path / "o" / "003.png"), cv2.IMREAD_UNCHANGED)
    assert np.all(got[..., 0] == 12345 + 1001 * 2)  # frame 3 is the third written


def test_overwrite_replaces_existing_frames_and_keeps_other_files(tmp_path):
    write_ramps(tmp_path / "f", [1, 2])
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "000001.png").write_bytes(b"old")
    (tmp_path / "o" / "notes.txt").write_text("mine")
    r = run(tmp_path / "f", tmp_path / "o" / "%06d.png", "--scale", "2")
    assert r.exit_code == 4 and "already holds frames named like '%06d.png'" in r.output
    assert (tmp_path / "o" / "000001.png").read_bytes() == b"old"
    r = run(tmp_path / "f", tmp_path / "o" / "%06d.png", "--scale", "2", "--overwrite")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["000001.png", "000002.png", "notes.txt"]
    assert cv2.imread(str(tmp_path / "o" / "000001.png"), cv2.IMREAD_UNCHANGED).shape == (H * 2, W * 2, 3)


def _missing(d):
    write_ramps(d, [1, 2, 4])


def _mixed_sizes(d):
    write_ramps(d, [1, 2])
    cv2.imwrite(str(d / "000003.png"), np.zeros((H, W + 2, 3), np.uint16))


def _empty(d):
    d.mkdir()


@pytest.mark.parametrize("make,src,dst,extra,code,sentence", [
    (_missing, "f", "o/%06d.png", [], 3, "Folder '{f}' is missing frame 3 (it has '000002.png' and then '000004.png'); restore the missing frames or process the runs separately."),
    (_mixed_sizes, "f", "o/%06d.png", [], 3, "is 34x24 but the sequence's first frame is 32x24; every frame must have one size."),
    (_mixed_sizes, "f", "out.mkv", ["--fps", "24"], 3, "is 34x24 but the sequence's first frame is 32x24"),
    (_empty, "f", "o/%06d.png", [], 3, "holds no image files"),
    (_missing, "f/%04d.png", "o/%06d.png", [], 3, "matches no files; check the folder and the pattern"),
    (_missing, "f/%d_%d.png", "o/%06d.png", [], 3, "has more than one %d in its name"),
    (_empty, "f", "o/%d_%d.png", [], 7, "must have exactly one %d in its name"),
    (_missing, "f", "o/%06d.jpg", [], 7, "must end in .png, .tif, .tiff"),
    (_missing, "f", "one.png", [], 7, "is one image; to write an image sequence give a numbered pattern"),
    (lambda d: write_ramps(d, [1, 2]), "f", "out.mkv", [], 7, "has no frame rate of its own; give one with --fps (e.g. --fps 24)"),
    (lambda d: write_ramps(d, [1, 2]), "f", "o/%06d.png", ["--crf", "20"], 7, "--crf applies to video output, not to the image sequence"),
    (lambda d: write_ramps(d, [1, 2]), "f", "out.mkv", ["--fps", "24", "--resume"], 7, "--resume works on video files and on image-sequence outputs"),
    (lambda d: write_ramps(d, [1, 2]), "f", "f/up_%06d.png", [], 4, "is in the input sequence's folder"),
])
def test_bad_input_is_one_sentence_and_leaves_nothing(tmp_path, make, src, dst, extra, code, sentence):
    make(tmp_path / "f")
    before = everything(tmp_path)
    r = run(tmp_path / src, tmp_path / dst, "--scale", "2", *extra)
    assert r.exit_code == code, r.output
    message = r.output.strip().removeprefix("Error: ")
    assert sentence.format(f=tmp_path / "f") in message, r.output
    assert "Traceback" not in r.output and message.count("\n") == 0
    assert everything(tmp_path) == before  # no output, no hidden temporary file or folder


def test_fps_with_a_video_is_refused(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=2, size=(W, H))
    r = run(clip.path, tmp_path / "out.mp4", "--fps", "24")
    assert r.exit_code == 7 and "--fps applies to image-sequence input" in r.output
    assert not (tmp_path / "out.mp4").exists()


def test_ntsc_fps_reaches_the_video(tmp_path):
    write_ramps(tmp_path / "f", [1, 2])
    r = run(tmp_path / "f", tmp_path / "out.mp4", "--fps", str(24000 / 1001), "--scale", "1")
    assert r.exit_code == 0, r.output
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(24000, 1001)


def test_16_bit_png_to_dpx_keeps_16_bits(tmp_path):
    write_ramps(tmp_path / "f", [5, 6])
    r = run(tmp_path / "f", tmp_path / "o" / "%04d.dpx", "--scale", "2")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0005.dpx", "0006.dpx"]
    for k, name in enumerate(["0005.dpx", "0006.dpx"]):
        with av.open(str(tmp_path / "o" / name)) as c:
            rgb = next(c.decode(video=0)).to_ndarray(format="rgb48le")
        assert rgb.shape == (H * 2, W * 2, 3) and np.all(rgb[..., 2] == 12345 + 1001 * k)
