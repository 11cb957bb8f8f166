"""Image sequences as a source and a sink (issue 25): listing, reading, writing, atomic publish.

Frames are written in tmp_path with OpenCV (PNG/TIFF, 8/16-bit) or PyAV (DPX, EXR), read
back independently and compared sample by sample.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from vsr_pipeline.errors import ConfigError, InputError, OutputError
from vsr_pipeline.io import files
from vsr_pipeline.io.options import EncodeOptions
from vsr_pipeline.io.sequence import SequenceReader, is_sequence_input, list_sequence, probe_sequence, read_image
from vsr_pipeline.io.sequence_sink import SequenceWriter, check_sequence_output, is_sequence_output
from vsr_pipeline.io.source import check_output, probe_source


def write_frames(folder: Path, numbers, *, dtype=np.uint8, size=(8, 6), ext=".png", fmt="{:06d}", channels=3, seed=0):
    """Random frames named fmt.format(n) + ext; returns {n: HxWxC array in OpenCV's BGR order}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    out = {}
    for n in numbers:
        shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
        arr = rng.integers(0, top + 1, shape).astype(dtype)
        assert cv2.imwrite(str(folder / (fmt.format(n) + ext)), arr)
        out[n] = arr
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# listing -------------------------------------------------------------------------------

def test_folder_pattern_and_glob_list_the_same_frames_in_order(tmp_path):
    write_frames(tmp_path / "f", [9, 10, 11, 12])  # 10 sorts before 9 as text: order must be by number
    for where in (tmp_path / "f", tmp_path / "f" / "%06d.png", tmp_path / "f" / "*.png"):
        seq = list_sequence(where)
        assert [p.name for p in seq.files] == ["000009.png", "000010.png", "000011.png", "000012.png"]
        assert seq.first == 9 and list(seq.numbers) == [9, 10, 11, 12]


def test_unpadded_numbers_sort_numerically(tmp_path):
    write_frames(tmp_path / "f", [8, 9, 10], fmt="shot_{}")
    seq = list_sequence(tmp_path / "f")
    assert [p.name for p in seq.files] == ["shot_8.png", "shot_9.png", "shot_10.png"]
    assert [p.name for p in list_sequence(tmp_path / "f" / "shot_%d.png").files] == ["shot_8.png", "shot_9.png", "shot_10.png"]


def test_printf_width_is_exact(tmp_path):
    write_frames(tmp_path / "f", [1, 2], fmt="{:04d}")
    write_frames(tmp_path / "f", [7], fmt="{:06d}")  # another width: not part of %04d
    assert [p.name for p in list_sequence(tmp_path / "f" / "%04d.png").files] == ["0001.png", "0002.png"]


def test_missing_frame_is_one_sentence_naming_it(tmp_path):
    write_frames(tmp_path / "f", [1, 2, 4, 5])
    with pytest.raises(InputError) as e:
        list_sequence(tmp_path / "f")
    msg = str(e.value)
    assert "is missing frame 3 (it has '000002.png' and then '000004.png')" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")


def test_missing_run_of_frames_is_named(tmp_path):
    write_frames(tmp_path / "f", [1, 5])
    with pytest.raises(InputError, match="is missing frames 2 to 4"):
        list_sequence(tmp_path / "f" / "%06d.png")


@pytest.mark.parametrize("make,where,match", [
    (lambda d: d.mkdir(), "f", "holds no image files"),
    (lambda d: write_frames(d, [1]), "f/%06d.jpg", "matches no files"),
    (lambda d: write_frames(d, [1]), "f/%06d_%02d.png", "more than one %d"),
    (lambda d: write_frames(d, [1]), "nowhere/%06d.png", "does not exist"),
    (lambda d: (write_frames(d, [1]), write_frames(d, [2], ext=".tif")), "f", "mixes image formats (.png, .tif)"),
    (lambda d: (write_frames(d, [1]), write_frames(d, [1], fmt="a_{:06d}")), "f", "holds more than one sequence"),
    (lambda d: (write_frames(d, [1]), write_frames(d, [1], fmt="{:04d}")), "f", "holds frame 1 twice"),
    (lambda d: write_frames(d, [1], fmt="cover"), "f", "has no frame number"),
])
def test_bad_sequences_are_refused(tmp_path, make, where, match):
    make(tmp_path / "f")
    with pytest.raises(InputError) as e:
        list_sequence(tmp_path / where)
    assert match in str(e.value)


def test_what_counts_as_a_sequence(tmp_path):
    (tmp_path / "d").mkdir()
    assert is_sequence_input(tmp_path / "d") and is_sequence_input("x/%06d.png") and is_sequence_input("x/*.tif")
    assert not is_sequence_input(tmp_path / "clip.mp4") and not is_sequence_input("x/%06d.mp4")
    assert is_sequence_output("o/%06d.png") and is_sequence_output("o/%d.tif")
    assert not is_sequence_output("o/out.png") and not is_sequence_output("o/100%.mp4")
    assert not is_sequence_output("o/100%done.mp4") and is_sequence_output("o/%06d.JPG")


# reading -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,ext", [(np.uint8, ".png"), (np.uint16, ".png"), (np.uint8, ".tif"), (np.uint16, ".tiff")])
def test_read_image_keeps_every_sample(tmp_path, dtype, ext):
    arr = write_frames(tmp_path, [1], dtype=dtype, ext=ext)[1]
    rgb, bits = read_image(tmp_path / f"000001{ext}")
    top = 255 if dtype == np.uint8 else 65535
    assert bits == (8 if dtype == np.uint8 else 16)
    assert rgb.dtype == torch.float32 and rgb.shape == (3, 6, 8)
    back = (rgb.permute(1, 2, 0).numpy() * top).round().astype(dtype)[..., ::-1]  # RGB -> OpenCV's BGR
    np.testing.assert_array_equal(back, arr)


def test_grey_and_alpha_become_rgb(tmp_path):
    grey = write_frames(tmp_path, [1], channels=1)[1]
    rgb, _ = read_image(tmp_path / "000001.png")
    for c in range(3):
        np.testing.assert_array_equal((rgb[c].numpy() * 255).round().astype(np.uint8), grey)
    bgra = write_frames(tmp_path, [2], channels=4)[2]
    rgb, _ = read_image(tmp_path / "000002.png")
    np.testing.assert_array_equal((rgb[0].numpy() * 255).round().astype(np.uint8), bgra[..., 2])


def test_damaged_image_is_an_input_error(tmp_path):
    (tmp_path / "000001.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="is not a picture OpenCV can read"):
        read_image(tmp_path / "000001.png")


def _write_av_image(path: Path, codec: str, pix_fmt: str, planes: list[np.ndarray]) -> None:
    h, w = planes[0].shape[:2]
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream(codec)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        frame = av.VideoFrame(w, h, pix_fmt)
        for dst, src in zip(frame.planes, planes):
            buf = np.zeros((h, dst.line_size // src.dtype.itemsize), src.dtype)
            row = src.reshape(h, -1)
            buf[:, : row.shape[1]] = row
            dst.update(buf.tobytes())
        for packet in (*s.encode(frame), *s.encode()):
            c.mux(packet)


def test_dpx_16_bit_is_read_exactly(tmp_path):
    rgb48 = np.random.default_rng(1).integers(0, 65536, (6, 8, 3)).astype("<u2")
    _write_av_image(tmp_path / "000001.dpx", "dpx", "rgb48le", [rgb48])
    rgb, bits = read_image(tmp_path / "000001.dpx")
    assert bits == 16
    np.testing.assert_array_equal((rgb.permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16), rgb48)


def test_exr_float_is_read_exactly_and_clipped(tmp_path):
    rgb = np.random.default_rng(2).random((3, 6, 8), dtype=np.float32)
    rgb[0, 0, 0] = 3.5  # linear light above 1: clipped
    _write_av_image(tmp_path / "000001.exr", "exr", "gbrpf32le", [rgb[1], rgb[2], rgb[0]])
    got, bits = read_image(tmp_path / "000001.exr")
    assert bits == 32
    want = rgb.copy()
    want[0, 0, 0] = 1.0
    np.testing.assert_array_equal(got.numpy(), want)


def test_reader_numbers_timestamps_and_section(tmp_path):
    frames = write_frames(tmp_path / "f", range(1001, 1011), dtype=np.uint16)
    info = probe_sequence(tmp_path / "f", fps=10)
    assert (info.width, info.height, info.frame_count, info.bit_depth, info.fps) == (8, 6, 10, 16, 10)
    reader = SequenceReader(info, start=0.3, duration=0.4)
    got = list(reader)
    assert reader.first_number == 1004 and len(got) == 4
    assert [f.pts for f in got] == [0, 1, 2, 3] and got[0].time_base == info.time_base
    np.testing.assert_array_equal((got[0].rgb.permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16), frames[1004][..., ::-1])


def test_a_frame_of_another_size_stops_the_read(tmp_path):
    write_frames(tmp_path / "f", [1, 2])
    write_frames(tmp_path / "f", [3], size=(10, 6))
    reader = SequenceReader(probe_sequence(tmp_path / "f"))
    with pytest.raises(InputError, match=r"000003.png' is 10x6 but the sequence's first frame is 8x6"):
        list(reader)


def test_ntsc_rate_stays_exact(tmp_path):
    write_frames(tmp_path / "f", [1])
    assert probe_sequence(tmp_path / "f", fps=24000 / 1001).fps == Fraction(24000, 1001)
    with pytest.raises(ConfigError, match="--fps must be a positive number"):
        probe_sequence(tmp_path / "f", fps=0)


# writing -------------------------------------------------------------------------------

def _info(tmp_path, dtype=np.uint16):
    write_frames(tmp_path / "src", [1], dtype=dtype)
    return probe_sequence(tmp_path / "src")


@pytest.mark.parametrize("dtype,ext,pix_fmt,want", [
    (np.uint16, ".png", None, np.uint16), (np.uint8, ".png", None, np.uint8), (np.uint16, ".tif", None, np.uint16),
    (np.uint16, ".png", "rgb24", np.uint8), (np.uint8, ".tif", "rgb48le", np.uint16),
])
def test_writer_depth_numbering_and_samples(tmp_path, dtype, ext, pix_fmt, want):
    info = _info(tmp_path, dtype)
    rgb = torch.rand(2, 3, 4, 5)
    w = SequenceWriter(tmp_path / "out" / f"f_%04d{ext}", info, (5, 4), EncodeOptions(pix_fmt=pix_fmt), first_number=41)
    with w:
        for x in rgb:
            w.write(x)
            assert not (tmp_path / "out").exists()  # nothing at the output path until complete
    assert leftovers(tmp_path / "out") == [f"f_0041{ext}", f"f_0042{ext}"]
    top = np.iinfo(want).max
    for i, name in enumerate(leftovers(tmp_path / "out")):
        back = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        assert back.dtype == want
        ref = (rgb[i].permute(1, 2, 0).numpy() * top).round().astype(want)[..., ::-1]
        np.testing.assert_array_equal(back, ref)
    assert leftovers(tmp_path) == ["out", "src"]


def test_writer_into_an_existing_folder_publishes_at_the_end(tmp_path):
    info = _info(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("kept")
    w = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4))
    w.open()
    w.write(torch.zeros(3, 4, 5))
    assert [n for n in leftovers(tmp_path / "out") if not n.startswith(".")] == ["notes.txt"]
    w.close()
    assert leftovers(tmp_path / "out") == ["001.png", "notes.txt"]


def test_abort_leaves_nothing(tmp_path):
    info = _info(tmp_path)
    for existing in (False, True):
        if existing:
            (tmp_path / "out").mkdir()
        w = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4))
        w.open()
        w.write(torch.zeros(3, 4, 5))
        w.abort()
        assert leftovers(tmp_path) == (["out", "src"] if existing else ["src"])
        assert not existing or leftovers(tmp_path / "out") == []


def test_stale_staging_folder_of_a_dead_process_is_removed(tmp_path, monkeypatch):
    info = _info(tmp_path)
    stale = tmp_path / f".out.vsrpipe-{files._host_tag()}-999999-abc.partial"
    stale.mkdir()
    (stale / "000001.png").write_bytes(b"x")
    monkeypatch.setattr(files, "_alive", lambda pid: pid != 999999)
    w = SequenceWriter(tmp_path / "out" / "%06d.png", info, (5, 4))
    w.open()
    assert not stale.exists()
    w.abort()


def test_writer_refuses_video_options(tmp_path):
    info = _info(tmp_path)
    for opts, flag in ((EncodeOptions(crf=3), "--crf"), (EncodeOptions(codec="libx264"), "--codec"),
                       (EncodeOptions(encoder_args="-tune film"), "--encoder-args")):
        with pytest.raises(ConfigError, match=f"{flag} applies to video output"):
            SequenceWriter(tmp_path / "o" / "%d.png", info, (5, 4), opts)
    with pytest.raises(ConfigError, match="rgb24 .8-bit. or rgb48le"):
        SequenceWriter(tmp_path / "o" / "%d.png", info, (5, 4), EncodeOptions(pix_fmt="yuv420p"))


@pytest.mark.parametrize("name,exc,match", [
    ("o/%d_%d.png", ConfigError, "exactly one %d"),
    ("o/%06d.jpg", ConfigError, "must end in .png, .tif, .tiff"),
    ("a/b/%06d.png", OutputError, "that would hold output folder 'b' does not exist"),
])
def test_output_patterns_checked(tmp_path, name, exc, match):
    with pytest.raises(exc, match=match):
        check_sequence_output(tmp_path / name, False)


def test_output_folder_with_frames_needs_overwrite(tmp_path):
    write_frames(tmp_path / "o", [1])
    with pytest.raises(OutputError, match="already holds frames named like '%06d.png' .e.g. '000001.png'."):
        check_sequence_output(tmp_path / "o" / "%06d.png", False)
    check_sequence_output(tmp_path / "o" / "%06d.png", True)
    check_sequence_output(tmp_path / "o" / "x_%06d.png", False)  # other names: no clash


def test_output_in_the_input_folder_is_refused(tmp_path):
    write_frames(tmp_path / "f", [1])
    with pytest.raises(OutputError, match="is in the input sequence's folder"):
        check_output(tmp_path / "f" / "%06d.png", tmp_path / "f" / "up_%06d.png", True)


def test_one_image_output_and_fps_rules(tmp_path):
    write_frames(tmp_path / "f", [1])
    with pytest.raises(ConfigError, match="is one image; to write an image sequence give a numbered pattern"):
        check_output(tmp_path / "f", tmp_path / "x.png", False)
    with pytest.raises(ConfigError, match="has no frame rate of its own; give one with --fps"):
        probe_source(tmp_path / "f", tmp_path / "x.mkv")
    assert probe_source(tmp_path / "f", tmp_path / "o" / "%d.png").fps == 25
    (tmp_path / "v.mp4").write_bytes(b"")
    with pytest.raises(ConfigError, match="--fps applies to image-sequence input"):
        probe_source(tmp_path / "v.mp4", fps=24)


def test_publish_dir_does_not_replace(tmp_path):
    tmp = files.temp_dir_for(tmp_path / "out")
    assert oct(os.stat(tmp).st_mode & 0o777) == "0o700"
    (tmp_path / "out").mkdir()
    assert files.publish_dir(tmp, tmp_path / "out") is False and tmp.is_dir()
    (tmp_path / "out").rmdir()
    assert files.publish_dir(tmp, tmp_path / "out") is True and not tmp.exists()



def test_output_folder_that_appears_while_writing_gets_the_frames(tmp_path):
    info = _info(tmp_path)
    w = SequenceWriter(tmp_path / "out" / "%02d.png", info, (5, 4), replace=False)
    w.open()
    w.write(torch.zeros(3, 4, 5))
    (tmp_path / "out").mkdir()  # someone made it meanwhile: the frames go into it, file by file
    (tmp_path / "out" / "keep.txt").write_text("x")
    w.close()
    assert leftovers(tmp_path / "out") == ["01.png", "keep.txt"]
    assert leftovers(tmp_path) == ["out", "src"]


def test_a_frame_that_appears_while_writing_is_not_replaced(tmp_path):
    info = _info(tmp_path)
    (tmp_path / "out").mkdir()
    w = SequenceWriter(tmp_path / "out" / "%02d.png", info, (5, 4), replace=False)
    w.open()
    w.write(torch.zeros(3, 4, 5))
    (tmp_path / "out" / "01.png").write_bytes(b"theirs")
    with pytest.raises(OutputError, match="appeared while vsrpipe was writing it"):
        w.close()
    assert (tmp_path / "out" / "01.png").read_bytes() == b"theirs"
    assert not [n for n in leftovers(tmp_path / "out") if n.startswith(".")]  # the temporary folder is gone


def test_published_files_and_folder_get_the_umask_permissions(tmp_path):
    info = _info(tmp_path)
    old = os.umask(0o022)
    try:
        with SequenceWriter(tmp_path / "out" / "%02d.png", info, (5, 4)) as w:
            w.write(torch.zeros(3, 4, 5))
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "out").st_mode & 0o777) == "0o755"
    assert oct(os.stat(tmp_path / "out" / "01.png").st_mode & 0o777) == "0o644"


def test_check_output_names_a_missing_video_and_an_existing_file(tmp_path):
    with pytest.raises(InputError, match="Input file .*missing.mp4' does not exist"):
        check_output(tmp_path / "missing.mp4", tmp_path / "o" / "%06d.png", False)
    write_frames(tmp_path / "f", [1])
    (tmp_path / "out.mkv").write_bytes(b"old")
    with pytest.raises(OutputError, match="out.mkv' already exists; pass --overwrite"):
        check_output(tmp_path / "f" / "%06d.png", tmp_path / "out.mkv", False)
    check_output(tmp_path / "f" / "%06d.png", tmp_path / "out.mkv", True)
    check_output(tmp_path / "nowhere" / "%06d.png", tmp_path / "x.mkv", False)  # the listing names the missing folder


def test_frames_of_an_earlier_longer_run_are_kept_and_named(tmp_path, caplog):
    info = _info(tmp_path)
    write_frames(tmp_path / "out", [1, 2, 3], fmt="{:02d}")
    with caplog.at_level("WARNING"):
        with SequenceWriter(tmp_path / "out" / "%02d.png", info, (5, 4)) as w:
            w.write(torch.zeros(3, 4, 5))
    assert leftovers(tmp_path / "out") == ["01.png", "02.png", "03.png"]
    assert cv2.imread(str(tmp_path / "out" / "01.png")).shape == (4, 5, 3)  # replaced
    assert "holds 2 frame(s) named like %02d.png that this run did not write (e.g. 02.png)" in caplog.text


def _decode_av(path: Path, fmt: str) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format=fmt)


@pytest.mark.parametrize("dtype,fmt,top", [(np.uint16, "rgb48le", 65535), (np.uint8, "rgb24", 255)])
def test_dpx_is_written_at_the_input_depth(tmp_path, dtype, fmt, top):
    info = _info(tmp_path, dtype)
    x = torch.rand(3, 4, 5)
    with SequenceWriter(tmp_path / "o" / "%03d.dpx", info, (5, 4), first_number=0) as w:
        w.write(x)
    assert w.plan.codec == "dpx" and w.plan.pix_fmt == fmt
    got = _decode_av(tmp_path / "o" / "000.dpx", fmt)  # FFmpeg's own decoder, not ours
    np.testing.assert_array_equal(got, (x.permute(1, 2, 0).numpy() * top).round().astype(dtype))


def test_exr_is_written_as_float(tmp_path):
    info = _info(tmp_path)
    x = torch.rand(3, 4, 5)
    with SequenceWriter(tmp_path / "o" / "%03d.exr", info, (5, 4)) as w:
        w.write(x)
    with av.open(str(tmp_path / "o" / "001.exr")) as c:
        frame = next(c.decode(video=0))
    assert frame.format.name.startswith("gbrp") and frame.format.name.endswith("f32le")
    g, b, r = (np.frombuffer(p, np.float32).reshape(4, -1)[:, :5] for p in frame.planes[:3])
    np.testing.assert_array_equal(np.stack([r, g, b]), x.numpy())
    with pytest.raises(ConfigError, match="--pix-fmt does not apply to EXR output"):
        SequenceWriter(tmp_path / "o" / "%03d.exr", info, (5, 4), EncodeOptions(pix_fmt="rgb24"))
