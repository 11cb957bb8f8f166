"""`vsrpipe batch` and `--resume` with image sequences (issue 25).

A folder of IN_DIR holding numbered images is one job, written as a folder of frames
named and numbered like its own. Sequences are written in tmp_path with OpenCV (8- and
16-bit PNG); outputs are read back and compared with a plain `vsrpipe enhance` of the
same input. Kills use the ``frame:N`` fault point (SIGKILL once N frames are staged).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from batch_helpers import leftovers, vsrpipe
from click.testing import CliRunner
from clips import make_clip

from vsr_pipeline.cli import main

ARGS = ["--model", "bicubic", "-s", "2", "-q"]


def write_frames(folder: Path, numbers, *, fmt: str, dtype=np.uint8, size=(16, 12), seed=0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 65535
    for n in numbers:
        frame = rng.integers(0, top + 1, (size[1], size[0], 3)).astype(dtype)
        assert cv2.imwrite(str(folder / (fmt.format(n) + ".png")), frame)


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def read(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir())}


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.png"))}


@pytest.fixture
def footage(tmp_path):
    """IN_DIR: a 16-bit sequence numbered from 1001, an 8-bit one named shot_8.. (unpadded), a video, a gapped sequence."""
    src = tmp_path / "in"
    write_frames(src / "deep", range(1001, 1007), fmt="{:06d}", dtype=np.uint16)
    write_frames(src / "shot", range(8, 13), fmt="shot_{}", seed=1)
    write_frames(src / "gap", [1, 2, 4], fmt="{:04d}", seed=2)
    make_clip(src / "clip.mkv", n=6, size=(16, 12))
    return src


def test_batch_of_sequences_and_a_video(tmp_path, footage):
    out = tmp_path / "out"
    r = cli("batch", footage, out, *ARGS, "--json")
    assert r.exit_code == 8, r.output  # the gapped sequence failed, alone
    report = {f["path"]: f for f in json.loads(r.output[r.output.index("{"):])["files"]}
    assert {k: v["status"] for k, v in report.items()} == {"clip.mkv": "done", "deep": "done", "gap": "failed", "shot": "done"}

    plain = cli("enhance", footage / "gap", tmp_path / "g" / "%04d.png", *ARGS)
    assert plain.exit_code == 3
    assert report["gap"]["reason"] == plain.output.strip().removeprefix("Error: ")  # enhance's one sentence
    assert report["gap"]["exit_code"] == 3 and not (out / "gap").exists()

    deep, shot = read(out / "deep"), read(out / "shot")
    assert list(deep) == [f"{n:06d}.png" for n in range(1001, 1007)]  # the input's numbering and names
    assert sorted(shot) == sorted(f"shot_{n}.png" for n in range(8, 13))
    assert all(a.dtype == np.uint16 and a.shape == (24, 32, 3) for a in deep.values())  # 16 bits kept
    assert all(a.dtype == np.uint8 for a in shot.values())
    for name in ("deep", "shot"):
        ref = tmp_path / f"ref-{name}"
        pattern = "%06d.png" if name == "deep" else "shot_%d.png"
        assert cli("enhance", footage / name, ref / pattern, *ARGS).exit_code == 0
        for frame, want in read(ref).items():
            got = read(out / name)[frame]
            assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1, (name, frame)
    with av.open(str(out / "clip.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    assert leftovers(out) == [".vsrpipe"] and not any((out / ".vsrpipe" / "work").iterdir())

    again = cli("batch", footage, out, *ARGS, "--json")
    files = {f["path"]: f for f in json.loads(again.output[again.output.index("{"):])["files"]}
    assert files["deep"]["status"] == files["shot"]["status"] == "skipped"  # a published sequence is recognised
    (out / "deep" / "001003.png").write_bytes(b"edited")
    third = cli("batch", footage, out, *ARGS, "--json")
    files = {f["path"]: f for f in json.loads(third.output[third.output.index("{"):])["files"]}
    assert files["deep"]["status"] == "done" and "redone" in files["deep"]["reason"]


def test_sequences_as_videos_need_fps(tmp_path, footage):
    r = cli("batch", footage, tmp_path / "out", *ARGS, "--ext", "mkv", "--json")
    files = {f["path"]: f for f in json.loads(r.output[r.output.index("{"):])["files"]}
    assert files["clip.mkv"]["status"] == "done"  # a video with --ext: unchanged
    assert files["deep"]["status"] == "failed" and "give one with --fps" in files["deep"]["reason"]
    r = cli("batch", footage, tmp_path / "out", *ARGS, "--ext", "mkv", "--fps", "24", "--json")
    files = {f["path"]: f for f in json.loads(r.output[r.output.index("{"):])["files"]}
    assert files["deep"]["status"] == "done" and files["clip.mkv"]["status"] == "skipped"  # --fps is not a video's setting
    with av.open(str(tmp_path / "out" / "deep.mkv")) as c:
        assert c.streams.video[0].average_rate == 24 and sum(1 for _ in c.decode(video=0)) == 6


def test_batch_resumes_a_killed_sequence_at_its_last_frame(tmp_path, footage):
    out = tmp_path / "out"
    args = ["batch", footage, out, *ARGS, "--pattern", "deep", "--json"]
    killed = vsrpipe(*args, fault="frame:3")
    assert killed.returncode == -9, killed.stderr
    assert not (out / "deep").exists()  # nothing at the output before the last frame
    staged = [p for p in (out / ".vsrpipe" / "work").rglob("*.png")]
    assert len(staged) == 3
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in staged}
    again = vsrpipe(*args)
    assert again.returncode == 0, again.stderr
    assert {n: stamps(out / "deep")[n] for n in kept} == kept  # frames 1001-1003 were not written again
    ref = tmp_path / "ref"
    assert cli("enhance", footage / "deep", ref / "%06d.png", *ARGS).exit_code == 0
    assert {k: v.tobytes() for k, v in read(out / "deep").items()} == {k: v.tobytes() for k, v in read(ref).items()}
    assert not any((out / ".vsrpipe" / "work").iterdir())


def test_enhance_resume_of_a_sequence_with_other_settings_starts_over(tmp_path, footage):
    out = tmp_path / "out" / "%06d.png"
    killed = vsrpipe("enhance", footage / "deep", out, *ARGS, "--resume", fault="frame:2")
    assert killed.returncode == -9, killed.stderr
    assert staged_names(out) == ["001001.png", "001002.png"]
    again = vsrpipe("enhance", footage / "deep", out, "--model", "bicubic", "-s", "3", "-q", "--resume")
    assert again.returncode == 0, again.stderr
    assert "its input or settings changed since the interrupted run; starting it over" in again.stderr
    assert all(a.shape == (36, 48, 3) for a in read(out.parent).values())  # no ×2 frame of the killed run mixed in
    assert len(read(out.parent)) == 6 and leftovers(out.parent) == []


def test_resume_refuses_a_video_made_from_a_sequence(tmp_path, footage):
    r = cli("enhance", footage / "deep", tmp_path / "o.mkv", *ARGS, "--fps", "24", "--resume")
    assert r.exit_code == 7
    assert "--resume works on video files and on image-sequence outputs" in r.output
    assert not (tmp_path / "o.mkv").exists()


def staged_names(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.rglob("*.png"))


def test_staged_frames_of_other_settings_or_another_input_are_never_found(tmp_path):
    from vsr_pipeline.api import make_config
    from vsr_pipeline.batch.jobs import staging_folder

    dst = tmp_path / "out" / "%06d.png"
    work = tmp_path / "work"
    first = staging_folder(work, make_config(model="bicubic", scale=2), dst, (10, 1, "abc"))
    first.mkdir(parents=True)
    assert staging_folder(work, make_config(model="bicubic", scale=2, overwrite=True), dst, (10, 1, "abc")) == first
    other = staging_folder(work, make_config(model="bicubic", scale=3), dst, (10, 1, "abc"))
    changed = staging_folder(work, make_config(model="bicubic", scale=2), dst, (10, 2, "abc"))
    assert len({first, other, changed}) == 3 and not first.exists()  # the other settings' frames are removed


def test_a_sequence_identity_changes_with_any_frame(tmp_path):
    import os

    from vsr_pipeline.batch.manifest import Identity

    write_frames(tmp_path / "s", range(1, 4), fmt="{:04d}")
    before = Identity.of(tmp_path / "s")
    frame = tmp_path / "s" / "0002.png"
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # an older frame put in its place
    assert Identity.of(tmp_path / "s") != before
    write_frames(tmp_path / "s", [4], fmt="{:04d}")
    assert Identity.of(tmp_path / "s").size > before.size


def test_a_folder_with_images_beside_videos_is_walked_not_read_as_a_sequence(tmp_path):
    """A poster beside the episodes: the folder is no sequence (it would fail as one, and hide the videos)."""
    src = tmp_path / "in"
    write_frames(src / "show", [1], fmt="poster{}")
    make_clip(src / "show" / "ep1.mkv", n=3, size=(16, 12))
    write_frames(src / "stills", [1, 2], fmt="{:04d}")
    write_frames(src / "nested", [1, 2], fmt="{:04d}")
    write_frames(src / "nested" / "inner", [1, 2], fmt="{:04d}", seed=3)

    def run(*extra):
        r = cli("batch", src, tmp_path / f"out{len(extra)}", *ARGS, "--json", *extra)
        files = {f["path"]: f for f in json.loads(r.output[r.output.index("{"):])["files"]}
        return r, files

    flat, files = run()
    assert flat.exit_code == 0, flat.output
    assert files["stills"]["status"] == "done"
    assert "show/" in files and "not an image sequence" in files["show/"]["reason"] and "-r" in files["show/"]["reason"]
    assert "nested/" in files and "not an image sequence" in files["nested/"]["reason"]
    deep, files = run("-r")
    assert deep.exit_code == 0, deep.output
    assert files["show/ep1.mkv"]["status"] == "done" and files["stills"]["status"] == "done"
    assert files["nested/inner"]["status"] == "done"  # the sequence inside a walked folder
    assert files["show/poster1.png"]["reason"] == "not a video file"
    with av.open(str(tmp_path / "out1" / "show" / "ep1.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3
