"""Faults that used to lose or splice data: a report over a video, short or foreign segments, an input replaced
mid-run, an output damaged after it was done, a resumed failure, a full disk under the manifest, long names.

Each test reproduces the fault through the command line, then checks the message, the
exit code, and that nothing was lost or published half-made.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from vsr_pipeline.batch.manifest import Manifest
from vsr_pipeline.cli import main

from clips import make_clip, read_back
from batch_helpers import assert_same_video, leftovers, vsrpipe

ARGS = ["--model", "bicubic", "-s", "2", "--codec", "ffv1", "-q"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def two_clips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "c1.mp4", n=6, size=(32, 24), seed=1)
    make_clip(src / "c2.mp4", n=6, size=(32, 24), seed=2)
    return src


# 1. --report never replaces a file it was not allowed to, nor one the run reads or writes ----------
@pytest.mark.parametrize("target", ["in/c1.mp4", "out/c2.mp4"])
def test_batch_report_never_replaces_an_input_or_output(tmp_path, two_clips, target):
    out = tmp_path / "out"
    first = cli("batch", two_clips, out, *ARGS)
    assert first.exit_code == 0, first.output
    victim = tmp_path / target
    before = victim.read_bytes()
    r = cli("batch", two_clips, out, *ARGS, "--report", victim, "--overwrite")
    assert r.exit_code == 4, r.output
    assert "is a file this run reads or writes" in r.output and str(victim) in r.output
    assert victim.read_bytes() == before  # still the video
    assert leftovers(tmp_path / "in") == [] and leftovers(out) == [".vsrpipe"]


def test_report_needs_overwrite_to_replace_a_file(tmp_path, two_clips):
    notes = tmp_path / "notes.json"
    notes.write_text("mine")
    r = cli("batch", two_clips, tmp_path / "out", *ARGS, "--report", notes)
    assert r.exit_code == 4 and "already exists; pass --overwrite to replace it" in r.output
    assert notes.read_text() == "mine" and not (tmp_path / "out").exists()  # refused before any work
    e = cli("enhance", two_clips / "c1.mp4", tmp_path / "up.mkv", *ARGS, "--report", notes)
    assert e.exit_code == 4 and "already exists" in e.output and not (tmp_path / "up.mkv").exists()
    assert notes.read_text() == "mine"
    ok = cli("batch", two_clips, tmp_path / "out", *ARGS, "--report", notes, "--overwrite")
    assert ok.exit_code == 0 and json.loads(notes.read_text())["counts"]["done"] == 2


def test_enhance_report_refuses_the_input_and_the_model(tmp_path, two_clips):
    src = two_clips / "c1.mp4"
    before = src.read_bytes()
    for resume in ([], ["--resume"]):
        r = cli("enhance", src, tmp_path / "up.mkv", *ARGS, *resume, "--report", src, "--overwrite")
        assert r.exit_code == 4 and "is a file this run reads or writes" in r.output, r.output
        assert src.read_bytes() == before and not (tmp_path / "up.mkv").exists()
    assert leftovers(tmp_path) == []


def test_a_resumed_run_reports_its_runtime_and_model_like_a_plain_one(tmp_path, two_clips):
    reports = {}
    for resume in ([], ["--resume"]):
        rep = tmp_path / f"run{len(resume)}.json"
        r = cli("enhance", two_clips / "c1.mp4", tmp_path / f"up{len(resume)}.mkv", *ARGS, *resume, "--report", rep)
        assert r.exit_code == 0, r.output
        reports[bool(resume)] = json.loads(rep.read_text())
    for key in ("runtime", "model_info", "model", "frames"):
        assert reports[True][key] == reports[False][key] and reports[True][key], key
    assert reports[True]["model_info"]["name"] == "bicubic" and reports[True]["runtime"]["name"] == "torch"


# 2./3. segments: short, foreign or linked ---------------------------------------------------------
@pytest.fixture
def resumed(tmp_path):
    """A 30-frame clip enhanced with --resume in 3 segments, killed before the join: (src, out, work, reference)."""
    src = make_clip(tmp_path / "src.mkv", n=30, size=(32, 24), seed=3, audio=True).path
    reference = tmp_path / "reference.mkv"
    assert cli("enhance", src, reference, *ARGS).exit_code == 0
    out = tmp_path / "out.mkv"
    killed = vsrpipe("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10", fault="join")
    assert killed.returncode == -9 and not out.exists()
    work = tmp_path / ".out.mkv.vsrpipe"
    with sqlite3.connect(work / "manifest.sqlite") as db:
        assert [i for (i,) in db.execute("select idx from segments order by idx")] == [0, 1, 2]
    return src, out, work, reference


def test_a_truncated_segment_is_encoded_again_not_joined_short(resumed):
    src, out, work, reference = resumed
    seg = work / "segments" / "seg-00001.mkv"
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) * 2 // 3])
    again = vsrpipe("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")
    assert again.returncode == 0, again.stderr
    assert "segment 1" in again.stderr and "does not match its record" in again.stderr
    assert_same_video(reference, out)


def test_foreign_segments_with_the_same_timing_are_not_published(tmp_path, resumed):
    src, out, work, reference = resumed
    other = make_clip(tmp_path / "other.mkv", n=30, size=(32, 24), seed=9, audio=True).path
    other_out = tmp_path / "other_out.mkv"
    assert vsrpipe("enhance", other, other_out, *ARGS, "--resume", "--segment-frames", "10", fault="join").returncode == -9
    for seg in (tmp_path / ".other_out.mkv.vsrpipe" / "segments").glob("seg-*"):
        shutil.copy(seg, work / "segments" / seg.name)  # same names, same timing, another clip's pictures
    again = vsrpipe("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("does not match its record") == 3
    assert_same_video(reference, out)  # this clip's frames, every one


def test_a_join_that_comes_out_short_publishes_nothing(tmp_path, resumed, monkeypatch):
    """The frame count is checked before the publish, whatever made the join short."""
    import vsr_pipeline.io.join as join

    src, out, work, _ = resumed
    real = join._video_packets

    def short(files):
        packets = list(real(files))
        yield from packets[:-11]

    monkeypatch.setattr(join, "_video_packets", short)
    r = cli("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")
    assert r.exit_code == 4, r.output
    assert "gave 19 frames where 30 were planned; nothing was published" in r.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_a_symlink_at_the_work_folder_is_refused(tmp_path):
    src = make_clip(tmp_path / "src.mkv", n=6, size=(32, 24)).path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".out.mkv.vsrpipe").symlink_to(elsewhere)
    r = cli("enhance", src, tmp_path / "out.mkv", *ARGS, "--resume")
    assert r.exit_code == 4 and "is a symbolic link; vsrpipe will not follow it" in r.output
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "out.mkv").exists()
    out_dir = tmp_path / "batch_out"
    out_dir.mkdir()
    (out_dir / ".vsrpipe").symlink_to(elsewhere)
    b = cli("batch", src.parent, out_dir, *ARGS, "--pattern", "src.mkv")
    assert b.exit_code == 4 and "is a symbolic link" in b.output and list(elsewhere.iterdir()) == []


# 4. an input replaced while its segments run ------------------------------------------------------
def test_an_input_replaced_between_segments_is_not_spliced(tmp_path, monkeypatch):
    import vsr_pipeline.batch.segments as segments

    src = make_clip(tmp_path / "src.mkv", n=30, size=(32, 24), seed=4).path
    other = make_clip(tmp_path / "other.mkv", n=30, size=(32, 24), seed=5).path
    real = segments.encode_segment

    def swap_after_first(src_, info, config, plan, idx, path, stage, progress=None):
        result = real(src_, info, config, plan, idx, path, stage, progress)
        if idx == 0:
            shutil.copy(other, src)  # another clip with the same timing replaces the input
        return result

    monkeypatch.setattr(segments, "encode_segment", swap_after_first)
    out = tmp_path / "out.mkv"
    r = cli("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")
    assert r.exit_code == 3, r.output
    assert "changed while it was being upscaled" in r.output and "nothing was published" in r.output
    assert not out.exists()
    monkeypatch.setattr(segments, "encode_segment", real)
    again = cli("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")  # starts over on the new input
    assert again.exit_code == 0, again.output
    reference = tmp_path / "reference.mkv"
    assert cli("enhance", other, reference, *ARGS).exit_code == 0
    assert_same_video(reference, out)


def test_batch_fails_the_replaced_file_alone(tmp_path, monkeypatch):
    import vsr_pipeline.batch.segments as segments

    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mkv", n=24, size=(32, 24), seed=6)
    make_clip(src / "b.mkv", n=6, size=(32, 24), seed=7)
    replacement = make_clip(tmp_path / "x.mkv", n=24, size=(32, 24), seed=8).path
    real = segments.encode_segment

    def swap(src_, info, config, plan, idx, path, stage, progress=None):
        if idx == 1 and src_.name == "a.mkv":
            shutil.copy(replacement, src_)  # replaced while this segment decodes
        return real(src_, info, config, plan, idx, path, stage, progress)

    monkeypatch.setattr(segments, "encode_segment", swap)
    out = tmp_path / "out"
    r = cli("batch", src, out, *ARGS, "--segment-frames", "8", "--json")
    assert r.exit_code == 8, r.output
    files = {f["path"]: f for f in json.loads(r.output[r.output.find("{"):])["files"]}
    assert files["a.mkv"]["status"] == "failed" and files["a.mkv"]["exit_code"] == 3
    assert "changed while it was being upscaled" in files["a.mkv"]["reason"]
    assert files["b.mkv"]["status"] == "done"
    assert not (out / "a.mkv").exists() and len(read_back(out / "b.mkv")["frames"]) == 6


# 5. an output damaged after it was done -----------------------------------------------------------
def test_a_damaged_output_is_redone_and_a_touched_one_is_kept(tmp_path, two_clips):
    out = tmp_path / "out"
    assert cli("batch", two_clips, out, *ARGS).exit_code == 0
    good = (out / "c1.mp4").read_bytes()
    (out / "c1.mp4").write_bytes(good[: len(good) // 2])  # damaged later: truncated
    os.utime(out / "c2.mp4", ns=(1, 1))  # touched, not changed
    r = cli("batch", two_clips, out, *ARGS, "--json")
    assert r.exit_code == 0, r.output
    files = {f["path"]: f for f in json.loads(r.output[r.output.find("{"):])["files"]}
    assert files["c1.mp4"]["status"] == "done" and "its output had changed" in files["c1.mp4"]["reason"]
    assert files["c2.mp4"] == {**files["c2.mp4"], "status": "skipped", "reason": "unchanged since it was done"}
    assert (out / "c1.mp4").read_bytes() == good
    with Manifest(out / ".vsrpipe") as m:  # the touched file's new time is remembered: no hash next time
        assert m.get("c2.mp4").output_mtime_ns == 1
    same_size = bytearray(good)
    same_size[len(good) // 2] ^= 0xFF  # damaged in place, same size
    (out / "c1.mp4").write_bytes(bytes(same_size))
    again = cli("batch", two_clips, out, *ARGS, "--json")
    files = {f["path"]: f for f in json.loads(again.output[again.output.find("{"):])["files"]}
    assert files["c1.mp4"]["status"] == "done" and (out / "c1.mp4").read_bytes() == good


# 6. a resumed failure retries -----------------------------------------------------------------------
def test_enhance_resume_retries_a_recorded_failure(tmp_path, monkeypatch):
    import vsr_pipeline.batch.segments as segments
    from vsr_pipeline.errors import OutputError

    src = make_clip(tmp_path / "src.mkv", n=12, size=(32, 24)).path
    out = tmp_path / "out.mkv"
    real = segments.join_segments

    def fails(*a, **k):
        raise OutputError("The join failed this once.")

    monkeypatch.setattr(segments, "join_segments", fails)
    r = cli("enhance", src, out, *ARGS, "--resume", "--segment-frames", "6")
    assert r.exit_code == 4 and "The join failed this once." in r.output
    with Manifest(tmp_path / ".out.mkv.vsrpipe") as m:
        assert m.rows()[0].status == "failed"
    monkeypatch.setattr(segments, "join_segments", real)
    again = cli("enhance", src, out, *ARGS, "--resume", "--segment-frames", "6")
    assert again.exit_code == 0, again.output
    assert "--retry-failed" not in again.output and len(read_back(out)["frames"]) == 12


# 8. a full disk under the manifest ------------------------------------------------------------------
def test_a_full_disk_under_the_manifest_is_an_output_error(tmp_path, two_clips, monkeypatch):
    real_open = Manifest.open

    def tiny(self):
        real_open(self)
        pages = self.db.execute("pragma page_count").fetchone()[0]
        self.db.execute(f"pragma max_page_count={pages}")  # SQLite's own "database or disk is full"

    monkeypatch.setattr(Manifest, "open", tiny)
    for i in range(12):  # rows with long names fill the pages the manifest has, then it needs one more
        (two_clips / f"{i:02d}{'x' * 230}.mp4").write_bytes((two_clips / "c1.mp4").read_bytes())
    r = cli("batch", two_clips, tmp_path / "out", *ARGS)
    assert r.exit_code == 4, r.output
    assert "Cannot record progress in the batch manifest" in r.output and "the disk is full" in r.output
    assert "OperationalError" not in r.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".vsrpipe"]


# 10./11. paths as typed, and long names -------------------------------------------------------------
def test_the_same_batch_spelled_another_way_skips_its_files(tmp_path, two_clips, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("batch", "in", "out", *ARGS).exit_code == 0
    with sqlite3.connect(tmp_path / "out" / ".vsrpipe" / "manifest.sqlite") as db:
        assert sorted(db.execute("select output from files")) == [("c1.mp4",), ("c2.mp4",)]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = cli("batch", two_clips, tmp_path / "out", *ARGS, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.find("{"):])["counts"] == {"done": 0, "skipped": 2, "failed": 0}


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_a_250_byte_output_name_works(tmp_path, resume):
    src = make_clip(tmp_path / "src.mkv", n=6, size=(32, 24)).path
    name = "é" * 123 + ".mkv"  # 250 bytes in UTF-8
    assert len(name.encode()) == 250
    r = cli("enhance", src, tmp_path / name, *ARGS, *resume)
    assert r.exit_code == 0, r.output
    assert len(read_back(tmp_path / name)["frames"]) == 6 and leftovers(tmp_path) == []


def test_a_250_byte_file_name_in_a_batch(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    name = "b" * 246 + ".mkv"
    make_clip(src / name, n=6, size=(32, 24))
    r = cli("batch", src, tmp_path / "out", *ARGS)
    assert r.exit_code == 0, r.output
    assert len(read_back(tmp_path / "out" / name)["frames"]) == 6


def test_a_symlink_at_a_sequence_outputs_frame_staging_is_refused(tmp_path):
    import cv2
    import numpy as np

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (1, 2, 3):
        cv2.imwrite(str(frames / f"{i:04d}.png"), np.full((12, 16, 3), 30 * i, np.uint8))
    out = tmp_path / "out"
    work = out / ".%04d.png.vsrpipe"
    work.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (work / "frames").symlink_to(elsewhere)
    r = cli("enhance", frames, out / "%04d.png", "--model", "bicubic", "-s", "2", "-q", "--resume")
    assert r.exit_code == 4 and "is a symbolic link; vsrpipe will not follow it" in r.output, r.output
    assert list(elsewhere.iterdir()) == [] and not list(out.glob("*.png"))
