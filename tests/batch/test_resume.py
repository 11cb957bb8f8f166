"""kill -9 at every stage of a resumable run, then --resume: the output equals an uninterrupted run."""

from __future__ import annotations

import sqlite3

import pytest

from vsr_pipeline.api import make_config
from vsr_pipeline.pipeline import run_enhance

from clips import make_clip
from batch_helpers import assert_same_video, leftovers, vsrpipe

ARGS = ["--model", "bicubic", "-s", "2", "--codec", "ffv1", "-q"]


@pytest.fixture
def long_clip(tmp_path):
    """40 frames with scene cuts, audio and subtitles, and its uninterrupted FFV1 upscale."""
    src = tmp_path / "src"
    src.mkdir()
    clip = make_clip(src / "long clip.mkv", n=40, size=(32, 24), audio=True, subtitles=True)
    reference = tmp_path / "reference.mkv"
    run_enhance(clip.path, reference, make_config(model="bicubic", scale=2, codec="ffv1"))
    return clip.path, reference


def segments_done(work) -> list[int]:
    with sqlite3.connect(work / "manifest.sqlite") as db:
        return [i for (i,) in db.execute("select idx from segments order by idx")]


def test_enhance_resume_after_kill_during_a_segment(tmp_path, long_clip):
    src, reference = long_clip
    out = tmp_path / "out" / "-up scaled ü.mkv"
    out.parent.mkdir()
    killed = vsrpipe("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10", fault="segment")
    assert killed.returncode == -9, killed.stderr
    assert not out.exists()
    work = out.parent / f".{out.name}.vsrpipe"
    assert segments_done(work) == [0]  # the first segment is durable, the second was cut short
    again = vsrpipe("enhance", src, out, *ARGS, "--resume", "--segment-frames", "10")
    assert again.returncode == 0, again.stderr
    assert_same_video(reference, out)
    assert leftovers(out.parent) == []  # work folder and half-written segment gone


@pytest.mark.parametrize("fault", [pytest.param("join", marks=pytest.mark.slow),
                                   pytest.param("manifest:4", marks=pytest.mark.slow)])  # about 11 s each
def test_batch_resume_after_kill_during_join_or_manifest_write(tmp_path, long_clip, fault):
    src, reference = long_clip
    out_dir = tmp_path / "out"
    args = ["batch", src.parent, out_dir, *ARGS, "--segment-frames", "10", "--json"]
    killed = vsrpipe(*args, fault=fault)
    assert killed.returncode == -9, killed.stderr
    assert not (out_dir / "long clip.mkv").exists()
    again = vsrpipe(*args)
    assert again.returncode == 0, again.stderr
    assert_same_video(reference, out_dir / "long clip.mkv")
    assert '"resumed: ' in again.stdout  # finished segments were not redone
    # manifest:4 dies while recording segment 1 as done: that segment is redone, segment 0 is not
    assert leftovers(out_dir) == [".vsrpipe"] and not any((out_dir / ".vsrpipe" / "work").iterdir())
    third = vsrpipe(*args)
    assert third.returncode == 0 and '"skipped": 1' in third.stdout


def test_resume_refuses_sections(tmp_path, long_clip):
    src, _ = long_clip
    r = vsrpipe("enhance", src, tmp_path / "o.mkv", *ARGS, "--resume", "--start", "0.2")
    assert r.returncode == 7 and "--resume works on whole files" in r.stderr
    assert not (tmp_path / "o.mkv").exists() and leftovers(tmp_path) == []
