"""Resumable image-sequence outputs (issue 25): frames staged atomically, kept by a rerun, never recomputed.

In process and fast: frames are written in tmp_path with OpenCV, a run is stopped after
k staged frames by raising from the staging hook, and the rerun is compared with an
uninterrupted run sample by sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vsr_pipeline.api import make_config
from vsr_pipeline.enhancer import Enhancer
from vsr_pipeline.errors import OutputError
from vsr_pipeline.io.sequence import probe_sequence
from vsr_pipeline.io.sequence_sink import (
    SequenceWriter,
    Staging,
    pattern_like,
    staged_frames,
)
from vsr_pipeline.pipeline import run_enhance


class Stop(Exception):
    """Raised from the staging hook: the run stops as a crash would, after k frames are staged."""


def write_frames(folder: Path, numbers, *, dtype=np.uint16, size=(16, 12), seed=0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    for n in numbers:
        assert cv2.imwrite(str(folder / f"{n:06d}.png"), rng.integers(0, top + 1, (size[1], size[0], 3)).astype(dtype))


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime_ns) of every frame file in ``folder``."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.png"))}


def stop_after(k: int):
    def hook(n: int) -> None:
        if n == k:
            raise Stop
    return hook


@pytest.fixture
def frames(tmp_path):
    write_frames(tmp_path / "in", range(101, 111))  # 10 frames, 16-bit
    return tmp_path / "in"


def counting_stage(config) -> tuple[Enhancer, list[int]]:
    """An Enhancer whose process() records the frame indices it is asked for."""
    stage = Enhancer(config.stage)
    seen: list[int] = []
    process = stage.process

    def counted(x, indices, scenes):
        seen.extend(indices)
        return process(x, indices, scenes)

    stage.process = counted
    return stage, seen


@pytest.mark.parametrize("k", [3, 4])  # inside a batch of 2 and at its border
def test_interrupted_sequence_resumes_at_its_last_staged_frame(tmp_path, frames, tiny_weights, k):
    config = make_config(model=str(tiny_weights), batch=2)
    reference = tmp_path / "ref" / "%06d.png"
    run_enhance(frames, reference, config)
    out = tmp_path / "out" / "%06d.png"
    staging = tmp_path / "stage"
    with pytest.raises(Stop):
        run_enhance(frames, out, config, staging=Staging(staging, after_frame=stop_after(k)))
    assert not out.parent.exists()  # nothing at the output until the last frame
    kept = stamps(staging)
    assert len(kept) == k and staged_frames(staging, out, 101) == k
    stage, seen = counting_stage(config)
    result = run_enhance(frames, out, config, stage=stage, staging=Staging(staging))
    assert result.frames == 10
    assert min(seen) == k // 2 * 2 and len(seen) == 10 - k // 2 * 2  # only from the batch holding frame k
    assert {n: stamps(out.parent)[n] for n in kept} == kept  # the staged frames were moved, not rewritten
    assert sorted(stamps(out.parent)) == [f"{n:06d}.png" for n in range(101, 111)]
    for name in stamps(out.parent):
        a = cv2.imread(str(out.parent / name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(reference.parent / name), cv2.IMREAD_UNCHANGED)
        assert a.dtype == np.uint16 and np.array_equal(a, b), name
    assert not staging.exists()  # emptied into the output, then removed


def test_with_adaptation_the_rerun_starts_at_the_scene_of_the_first_missing_frame(tmp_path, monkeypatch, tiny_weights):
    from vsr_pipeline import pipeline

    write_frames(tmp_path / "in", range(1, 9))
    asked = []
    monkeypatch.setattr(pipeline, "scene_start", lambda src, info, threshold, frame: asked.append(frame) or 2)
    config = make_config(model=str(tiny_weights), adapt="online", steps_per_frame=1, warmup=0, lr_search=False, guard=0.0)
    staging = tmp_path / "stage"
    write_frames(staging, range(1, 6), size=(32, 24))  # five frames staged by an earlier run
    stage, seen = counting_stage(config)
    run_enhance(tmp_path / "in", tmp_path / "out" / "%06d.png", config, stage=stage, staging=Staging(staging))
    assert asked == [5] and min(seen) == 2  # frames 2..4 are computed again (not written): their scene's state


def test_scene_start_is_the_cut_the_whole_run_finds(tmp_path):
    from vsr_pipeline.pipeline import scene_start

    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(16):  # two scenes, a cut at frame 10 (the detector's shortest scene is 8 frames)
        img = np.full((36, 64, 3), 40 if n < 10 else 215, np.uint8)
        img[:, : 8 + n, 2] = 128  # slow motion inside a scene
        cv2.imwrite(str(folder / f"{n:04d}.png"), img)
    info = probe_sequence(folder, None)
    assert [scene_start(folder, info, 27.0, k) for k in (0, 9, 10, 15)] == [0, 0, 10, 10]


def test_staged_frames_count_the_unbroken_run_only(tmp_path):
    write_frames(tmp_path, [5, 6, 7, 9])
    (tmp_path / ".000008.png.partial").write_bytes(b"half")
    assert staged_frames(tmp_path, Path("o/%06d.png"), 5) == 3
    assert staged_frames(tmp_path, Path("o/%06d.png"), 4) == 0


def test_a_frame_name_never_holds_half_a_frame(tmp_path, monkeypatch):
    info = probe_sequence(_one_frame(tmp_path), None)
    writer = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4), staging=Staging(tmp_path / "stage"))
    writer.open()
    writer.write(torch.rand(3, 4, 5))

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OutputError, match="Could not write"):
        writer.write(torch.rand(3, 4, 5))
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == ["001.png"]  # no 002.png, no partial
    writer.abort()
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == ["001.png"]  # abort keeps what is staged


def test_a_kill_before_the_rename_leaves_only_a_partial(tmp_path, monkeypatch):
    info = probe_sequence(_one_frame(tmp_path), None)
    stage = tmp_path / "stage"
    writer = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4), staging=Staging(stage))
    writer.open()
    writer.write(torch.rand(3, 4, 5))

    def killed(src, dst):
        raise Stop  # the process dies here: no clean-up runs

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(Stop):
        writer.write(torch.rand(3, 4, 5))
    assert sorted(p.name for p in stage.iterdir()) == [".002.png.partial", "001.png"]
    monkeypatch.undo()
    assert staged_frames(stage, Path("o/%03d.png"), 1) == 1  # the rerun counts the whole frame only


def test_a_killed_writes_partial_is_removed_and_staged_frames_are_not_written_again(tmp_path):
    info = probe_sequence(_one_frame(tmp_path), None)
    stage = tmp_path / "stage"
    first = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4), staging=Staging(stage))
    first.open()
    for _ in range(2):
        first.write(torch.rand(3, 4, 5))
    (stage / ".003.png.partial").write_bytes(b"half a frame")
    kept = stamps(stage)
    second = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4), staging=Staging(stage, done=2))
    second.open()
    assert not (stage / ".003.png.partial").exists()
    for _ in range(3):
        second.write(torch.rand(3, 4, 5))  # the first two are staged already: not written
    second.close()
    published = stamps(tmp_path / "out")
    assert sorted(published) == ["001.png", "002.png", "003.png"]
    assert {n: published[n] for n in kept} == kept


def test_staged_frames_that_vanish_are_an_output_error(tmp_path):
    info = probe_sequence(_one_frame(tmp_path), None)
    writer = SequenceWriter(tmp_path / "out" / "%03d.png", info, (5, 4), staging=Staging(tmp_path / "stage", done=2))
    with pytest.raises(OutputError, match="went missing"):
        writer.open()


@pytest.mark.parametrize("first,suffix,want", [
    ("001001.png", ".png", "%06d.png"),
    ("shot_8.tif", ".png", "shot_%d.png"),
    ("take2_0007_final.jpg", ".png", "take2_%04d_final.png"),
    ("1000.png", ".tif", "%d.tif"),
    ("100%_7.png", ".png", "%06d.png"),
])
def test_output_patterns_are_named_like_the_input(first, suffix, want):
    assert pattern_like(first, suffix) == want


def _one_frame(tmp_path: Path) -> Path:
    write_frames(tmp_path / "src", [1], dtype=np.uint8, size=(5, 4))
    return tmp_path / "src"


@pytest.mark.parametrize("staged", [False, True])
def test_a_publish_that_fails_midway_takes_its_frames_back(tmp_path, monkeypatch, staged):
    """Into an existing folder frames are published one by one; a failure at the third leaves none of this run's
    frames at the output (staged: they are back in the staging folder for the next run)."""
    from vsr_pipeline.io import sequence_sink

    info = probe_sequence(_one_frame(tmp_path), None)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    stage = tmp_path / "stage"
    writer = SequenceWriter(out / "%03d.png", info, (5, 4), staging=Staging(stage) if staged else None)
    writer.open()
    for _ in range(4):
        writer.write(torch.rand(3, 4, 5))
    calls = []
    real = sequence_sink.publish

    def failing(src, dst, **kw):
        calls.append(dst.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(src, dst, **kw)

    monkeypatch.setattr(sequence_sink, "publish", failing)
    with pytest.raises(OutputError, match="the disk is full"):
        writer.close()
    assert calls == ["001.png", "002.png", "003.png"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    if staged:
        assert sorted(p.name for p in stage.iterdir()) == ["001.png", "002.png", "003.png", "004.png"]
    else:
        assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == ["src/000001.png"]
