"""vsrpipe batch on folders with bad inputs and faults: message, exit code, and nothing lost or left behind."""

from __future__ import annotations

import errno
import json
import os

import pytest
from click.testing import CliRunner

from vsr_pipeline.batch.manifest import Manifest
from vsr_pipeline.cli import main

from clips import make_clip
from batch_helpers import assert_same_video, leftovers

BASE = ["--model", "bicubic", "-s", "2", "--json"]


def batch(in_dir, out_dir, *args):
    r = CliRunner().invoke(main, ["batch", str(in_dir), str(out_dir), *BASE, *map(str, args)])
    start = r.stdout.find("{")
    return r, (json.loads(r.stdout[start:]) if start >= 0 else None)


def statuses(report) -> dict[str, tuple[str, str | None]]:
    return {f["path"]: (f["status"], f["reason"]) for f in report["files"]}


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a b.mp4", n=6, size=(32, 24), audio=True)
    make_clip(src / "-dash.mkv", n=5, size=(32, 24))
    make_clip(src / "sub" / "ünïcode.mp4", n=4, size=(32, 24))
    (src / "notes.txt").write_text("not a video")
    (src / "garbage.mp4").write_bytes(b"\x00" * 2048)
    good = make_clip(tmp_path / "whole.mp4", n=20, size=(32, 24)).path.read_bytes()
    (src / "truncated.mp4").write_bytes(good[: len(good) // 2])
    return src


def test_bad_files_fail_alone_and_odd_names_work(tmp_path, folder):
    out = tmp_path / "out"
    r, report = batch(folder, out, "-r")
    assert r.exit_code == 8, r.output
    st = statuses(report)
    assert {k for k, v in st.items() if v[0] == "done"} == {"a b.mp4", "-dash.mkv", "sub/ünïcode.mp4"}
    assert st["notes.txt"] == ("skipped", "not a video file")
    assert st["garbage.mp4"][0] == "failed" and "is not a video FFmpeg can read" in st["garbage.mp4"][1]
    assert st["truncated.mp4"][0] == "failed"
    assert report["counts"] == {"done": 3, "skipped": 1, "failed": 2}
    assert (out / "a b.mp4").is_file() and (out / "-dash.mkv").is_file() and (out / "sub" / "ünïcode.mp4").is_file()
    assert not (out / "garbage.mp4").exists() and not (out / "truncated.mp4").exists()
    assert leftovers(out) == [".vsrpipe"]
    # a rerun skips what is done and keeps failed files failed unless asked
    r2, report2 = batch(folder, out, "-r")
    st2 = statuses(report2)
    assert r2.exit_code == 8 and st2["a b.mp4"] == ("skipped", "unchanged since it was done")
    assert "--retry-failed" in st2["garbage.mp4"][1]
    r3, report3 = batch(folder, out, "-r", "--retry-failed")
    assert statuses(report3)["garbage.mp4"][0] == "failed" and "--retry-failed" not in statuses(report3)["garbage.mp4"][1]


def test_table_and_exit_code_zero_without_failures(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "one.mp4", n=4, size=(32, 24))
    r = CliRunner().invoke(main, ["batch", str(src), str(tmp_path / "out"), "--model", "bicubic", "-s", "2",
                                  "--ext", "mkv"])
    assert r.exit_code == 0, r.output
    assert "done" in r.output and "one.mp4" in r.output and "1 done, 0 skipped, 0 failed" in r.output
    assert "batch: 0/1 files" in r.output  # not a terminal: progress as log lines
    assert (tmp_path / "out" / "one.mkv").is_file()


def test_changed_input_is_redone(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=4, size=(32, 24))
    make_clip(src / "b.mp4", n=4, size=(32, 24))
    out = tmp_path / "out"
    assert batch(src, out)[0].exit_code == 0
    make_clip(src / "b.mp4", n=7, size=(32, 24))  # the input changes between runs
    r, report = batch(src, out)
    assert r.exit_code == 0
    assert statuses(report) == {"a.mp4": ("skipped", "unchanged since it was done"), "b.mp4": ("done", None)}
    assert report["files"][1]["frames"] == 7
    r, report = batch(src, out, "--scale", "1")  # other settings: everything is redone
    assert report["counts"]["done"] == 2


def test_out_dir_inside_in_dir_is_never_read(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=4, size=(32, 24))
    out = src / "upscaled"
    for run in range(2):
        r, report = batch(src, out, "-r")
        assert r.exit_code == 0, r.output
        if run:  # the second run finds OUT_DIR (and its outputs) inside IN_DIR
            assert statuses(report)["upscaled/"] == ("skipped", "the output folder (never read as input)")
            assert statuses(report)["a.mp4"] == ("skipped", "unchanged since it was done")
    assert sorted(p.name for p in out.iterdir()) == [".vsrpipe", "a.mp4"]
    r, _ = batch(src, src)
    assert r.exit_code == 4 and "is the input folder" in r.output


def test_symlink_loop_is_listed_not_followed(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "sub" / "a.mp4", n=4, size=(32, 24))
    os.symlink(src, src / "sub" / "loop")
    r, report = batch(src, tmp_path / "out", "-r")
    assert r.exit_code == 0, r.output
    assert statuses(report)["sub/loop/"] == ("skipped", "symbolic link loop: folder already visited")
    assert report["counts"]["done"] == 1


def test_two_batches_on_one_out_dir(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=4, size=(32, 24))
    out = tmp_path / "out"
    with Manifest(out / ".vsrpipe"):  # another batch holds the folder
        r = CliRunner().invoke(main, ["batch", str(src), str(out), "--model", "bicubic", "-s", "2"])
    assert r.exit_code == 4, r.output
    assert f"Another vsrpipe run (pid {os.getpid()}) is writing to {str(out)!r}" in r.output
    assert sorted(p.name for p in out.iterdir()) == [".vsrpipe"]


def test_existing_output_is_kept_without_overwrite(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=4, size=(32, 24))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_bytes(b"precious")
    r, report = batch(src, out)
    assert r.exit_code == 8 and "already exists; pass --overwrite" in statuses(report)["a.mp4"][1]
    assert (out / "a.mp4").read_bytes() == b"precious"
    r, report = batch(src, out, "--overwrite", "--retry-failed")
    assert r.exit_code == 0 and (out / "a.mp4").read_bytes() != b"precious"


def test_disk_full_during_a_segment_then_resume(tmp_path, monkeypatch):
    from vsr_pipeline.io.writer import VideoWriter

    src = tmp_path / "in"
    src.mkdir()
    clip = make_clip(src / "long.mkv", n=30, size=(32, 24), audio=True)
    write = VideoWriter.write

    def full_disk(self, *a, **kw):
        if self.path.name == "seg-00001.mkv" and self.frames_written == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *a, **kw)

    monkeypatch.setattr(VideoWriter, "write", full_disk)
    out = tmp_path / "out"
    args = ["--codec", "ffv1", "--segment-frames", "10", "--scene-threshold", "0"]
    r, report = batch(src, out, *args)
    assert r.exit_code == 8 and "No space left on device" in statuses(report)["long.mkv"][1]
    assert not (out / "long.mkv").exists()
    work = [p for p in (out / ".vsrpipe" / "work").iterdir()]
    assert [p.name for p in work[0].iterdir()] == ["seg-00000.mkv"]  # the finished segment is kept, no partial file
    monkeypatch.setattr(VideoWriter, "write", write)
    r, report = batch(src, out, *args, "--retry-failed")
    assert r.exit_code == 0 and statuses(report)["long.mkv"] == ("done", "resumed: 1 of 3 segments were already done")
    from vsr_pipeline.api import enhance

    enhance(clip.path, tmp_path / "reference.mkv", model="bicubic", scale=2, codec="ffv1", scene_threshold=0.0)
    assert_same_video(tmp_path / "reference.mkv", out / "long.mkv")
    assert leftovers(out) == [".vsrpipe"]


def test_unreadable_input_fails_alone(tmp_path, monkeypatch):
    from vsr_pipeline.batch import manifest

    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=4, size=(32, 24))
    make_clip(src / "locked.mp4", n=4, size=(32, 24))
    of = manifest.Identity.of.__func__

    def unreadable(cls, path):
        if path.name == "locked.mp4":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return of(cls, path)

    monkeypatch.setattr(manifest.Identity, "of", classmethod(unreadable))
    r, report = batch(src, tmp_path / "out")
    assert r.exit_code == 8
    assert statuses(report)["locked.mp4"] == ("failed", f"Input file {str(src / 'locked.mp4')!r} cannot be read (Permission denied).")
    assert statuses(report)["a.mp4"][0] == "done"


def test_batch_has_every_enhance_option_with_the_same_default():
    from vsr_pipeline.cli.batch import batch as batch_command
    from vsr_pipeline.cli.enhance import enhance

    mine = {p.name: p.default for p in batch_command.params}
    for p in enhance.params:
        if p.name not in ("input", "output", "resume", "segment_frames", "fps"):  # --fps: image-sequence INPUT, enhance only
            assert p.name in mine and mine[p.name] == p.default, p.name
