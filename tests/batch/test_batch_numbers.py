"""The numbers a batch reports: worker seconds (not queue time), a queued state, one table row per file, the last
progress line and the final `done` record."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from vsr_pipeline.api import make_config
from vsr_pipeline.batch.runner import BatchOptions, run_batch
from vsr_pipeline.cli import main

from clips import make_clip
from batch_helpers import folder_of_clips

ARGS = ["--model", "bicubic", "-s", "2"]


def test_seconds_are_worker_time_and_waiting_files_are_queued(tmp_path):
    src = folder_of_clips(tmp_path / "in", ("a.mp4", "b.mp4"), n=60, size=(128, 96))
    out = tmp_path / "out"
    seen: list[dict] = []

    def look(snap):
        if (out / ".vsrpipe" / "manifest.sqlite").exists():
            with sqlite3.connect(out / ".vsrpipe" / "manifest.sqlite") as db:
                seen.append(dict(db.execute("select path, status from files")))

    result = run_batch(src, out, make_config(model="bicubic", scale=2), BatchOptions(jobs=1), progress=look)
    assert {"a.mp4": "running", "b.mp4": "queued"} in seen  # b waits while a runs
    a, b = result.outcomes
    assert a.seconds > 0 and b.seconds > 0
    assert a.seconds + b.seconds <= result.seconds  # b's seconds do not count its wait behind a
    with sqlite3.connect(out / ".vsrpipe" / "manifest.sqlite") as db:
        recorded = dict(db.execute("select path, seconds from files"))
    assert recorded == {"a.mp4": a.seconds, "b.mp4": b.seconds}


def test_a_newline_in_a_name_keeps_the_table_one_row_per_file(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "two\nlines.mp4", n=4, size=(32, 24))
    make_clip(src / "plain.mp4", n=4, size=(32, 24))
    r = CliRunner().invoke(main, ["batch", str(src), str(tmp_path / "out"), *ARGS])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4  # header, two rows, the counts
    assert any(line.startswith("done") and "two\\nlines.mp4" in line for line in lines)
    assert (tmp_path / "out" / "two\nlines.mp4").is_file()  # the file itself keeps its name


def test_json_progress_ends_with_the_totals_and_a_done_record(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", n=17, size=(32, 24))
    make_clip(src / "b.mp4", n=9, size=(32, 24))
    r = CliRunner().invoke(main, ["batch", str(src), str(tmp_path / "out"), *ARGS, "--progress", "json", "-q"])
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    *progress, last = records
    assert last["event"] == "done" and last["counts"] == {"done": 2, "skipped": 0, "failed": 0} and last["exit_code"] == 0
    assert progress[-1]["frames"] == progress[-1]["total"] == 26 and progress[-1]["files"] == 2
    assert all(p["eta"] is None or p["eta"] == round(p["eta"], 1) for p in progress)
