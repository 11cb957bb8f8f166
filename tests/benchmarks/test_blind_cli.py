"""benchmarks/blind.py on a tiny synthetic clip: the rows it prints and the JSON it writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench_loader import load_benchmark
from clips import make_clip

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "blind.py"


def load_bench():
    return load_benchmark("blind")


@pytest.mark.slow  # about 50 s on two shared cores: four vsrpipe runs and two ST-LPIPS evaluations
def test_tiny_clip_rows_and_json(tmp_path: Path):
    clip = make_clip(tmp_path / "hr.mp4", n=6, size=(66, 50)).path  # cropped to 64×48 for ×2 4:2:0
    out = tmp_path / "blind.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--clip", str(clip), "--start", "1", "--frames", "3", "--cases", "x2", "--seeds", "1",
         "--rows", "none,true-online", "--json", str(out), "--markdown"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| x2-seed0 |")]
    assert [line.split("|")[2].strip() for line in table] == ["none", "true-online"]

    data = json.loads(out.read_text())
    assert data["frames"] == 3 and data["size"] == [64, 48] and data["summary"] == []
    (case,) = data["cases"]
    assert case["case"] == "x2-seed0" and case["scale"] == 2 and case["degradation"].startswith("random_kernel(0, scale=2)")
    rows = {r["row"]: r for r in case["rows"]}
    assert list(rows) == ["none", "true-online"]
    for r in rows.values():
        assert r["error"] is None
        for key in ("psnr", "st_lpips", "s_per_frame", "delta_none"):
            assert math.isfinite(r[key]), (r["row"], key)
        assert r["share"] is None  # no estimate row here
    assert rows["none"]["delta_none"] == 0.0
    assert rows["true-online"]["delta_none"] == pytest.approx(rows["true-online"]["psnr"] - rows["none"]["psnr"])


def test_rows_expand_per_kernel_method_and_share():
    bench = load_bench()
    from vsr_pipeline.adapt.config import KERNEL_METHODS

    rows = bench.make_rows(["none", "estimate-consistency"], list(KERNEL_METHODS))
    assert [r["row"] for r in rows] == ["none", *(f"estimate-consistency[{k}]" for k in KERNEL_METHODS)]
    case = {"scale": 4, "degradation": "gauss:sigma=2"}
    assert bench.enhance_args(rows[0], case, "vsrnet-x4", None)[:6] == ["--scale", "4", "--model", "vsrnet-x4", "--adapt", "none"]
    est = bench.enhance_args(rows[1], case, "vsrnet-x4", None)
    assert est[est.index("--degradation") + 1] == "estimate" and est[est.index("--kernel-method") + 1] == KERNEL_METHODS[0]
    assert bench.share(26.0, 25.0, 27.0) == pytest.approx(0.5)
    assert bench.share(25.0, 25.0, 25.04) is None  # true gain ≤ 0.05 dB: n/a
    with pytest.raises(SystemExit):
        bench.pick("none,bogus", bench.ROWS, "row")


def test_summary_is_ratio_of_mean_gains():
    bench = load_bench()
    rows = bench.make_rows(["none", "true-online", "estimate-online"], ["spectral"])

    def case(seed, none, true, est):
        vals = dict(zip((r["row"] for r in rows), (none, true, est)))
        out = [{**r, "psnr": vals[r["row"]], "st_lpips": 0.1, "s_per_frame": 1.0, "error": None} for r in rows]
        bench.add_derived(out)
        return {"case": f"x2-seed{seed}", "group": "x2", "scale": 2, "rows": out}

    cases = [case(0, 30.0, 31.0, 30.9), case(1, 28.0, 29.0, 27.9)]
    assert cases[0]["rows"][2]["share"] == pytest.approx(0.9)
    (summary,) = bench.summarize(cases)
    est = summary["rows"][2]
    assert est["psnr"] == pytest.approx(29.4) and est["share"] == pytest.approx(0.4)  # (29.4 − 29) / (30 − 29)
    assert est["worst_delta_none"] == pytest.approx(-0.1)
    text = bench.table([*cases, summary], markdown=False)
    assert "40 %" in text and "-0.10" in text and "90 %" in text


def test_every_nth_frame_is_cut_exactly(tmp_path: Path):
    import av
    import numpy as np

    bench = load_bench()
    clip = make_clip(tmp_path / "hr.mp4", n=8, size=(64, 48)).path
    with av.open(str(clip)) as c:
        source = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    n, w, h = bench.cut_hr(clip, tmp_path / "cut.mkv", 1, 3, 8, every=3)
    assert (n, w, h) == (3, 64, 48)
    with av.open(str(tmp_path / "cut.mkv")) as c:
        cut = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    assert len(cut) == 3 and all(np.array_equal(a, source[i]) for a, i in zip(cut, (1, 4, 7)))  # lossless: the frames themselves
    with pytest.raises(SystemExit, match="needs 11"):
        bench.cut_hr(clip, tmp_path / "cut2.mkv", 1, 4, 8, every=3)


def test_e1_case_and_masked_row():
    bench = load_bench()
    (case,) = bench.make_cases(["e1"], 1, 0, Path("."))
    assert (case["scale"], case["degradation"]) == (3, "bicubic")
    (row,) = bench.make_rows(["true-masked"], [])
    args = bench.enhance_args(row, case, "realesr-animevideov3-x4", None)
    assert args[args.index("--adapt") + 1] == "masked" and args[args.index("--degradation") + 1] == "bicubic"
    assert args[args.index("--scale") + 1] == "3"


def test_resume_keeps_finished_rows_of_the_same_settings(tmp_path: Path, monkeypatch, capsys):
    """--resume with --workdir: rows measured by an earlier run with the same settings are read back, not run again."""
    bench = load_bench()
    calls: list[str] = []

    def fake_run(args):
        tool = args[args.index("degrade") if "degrade" in args else args.index("enhance") if "enhance" in args else args.index("evaluate")]
        calls.append(tool)
        if tool == "degrade":
            Path(args[args.index("degrade") + 2]).write_bytes(b"lr")
        elif tool == "enhance":
            Path(args[args.index("--report") + 1]).write_text(json.dumps({"frames": 3}))
        else:
            model_psnr = 30.0 + 0.5 * calls.count("evaluate")
            Path(args[args.index("--json") + 1]).write_text(json.dumps({"mean": {"psnr": model_psnr, "st_lpips": None}}))
        return 1.5

    monkeypatch.setattr(bench, "run", fake_run)
    monkeypatch.setattr(bench, "cut_hr", lambda src, dst, start, frames, multiple, every=1: (frames, 64, 48))
    work = tmp_path / "work"
    base = ["--clip", str(tmp_path / "hr.mp4"), "--cases", "e2", "--rows", "none,true-online", "--frames", "3",
            "--workdir", str(work), "--no-perceptual"]
    out = tmp_path / "first.json"
    assert bench.main(base + ["--json", str(out)]) == 0
    assert calls == ["degrade", "enhance", "evaluate", "enhance", "evaluate"]
    first = json.loads(out.read_text())["cases"][0]["rows"]
    assert [r["psnr"] for r in first] == [30.5, 31.0] and first[0]["s_per_frame"] == pytest.approx(0.5)

    calls.clear()
    again = tmp_path / "again.json"
    assert bench.main(base + ["--resume", "--json", str(again)]) == 0
    assert calls == []  # the LR and both rows kept
    assert json.loads(again.read_text())["cases"][0]["rows"] == first
    assert "kept from an earlier run" in capsys.readouterr().err

    calls.clear()
    (work / "row_e2_none.json").unlink()  # as if the run had been killed before this row
    assert bench.main(base + ["--resume"]) == 0
    assert calls == ["enhance", "evaluate"]

    calls.clear()
    assert bench.main(base + ["--resume", "--model", "compact-x4-gan"]) == 0  # other settings: nothing kept but the LR
    assert calls == ["enhance", "evaluate", "enhance", "evaluate"]
    calls.clear()
    assert bench.main(base + ["--resume", "--frames", "4"]) == 0  # other frames: a new LR too
    assert calls == ["degrade", "enhance", "evaluate", "enhance", "evaluate"]

    calls.clear()
    assert bench.main(base) == 0  # without --resume everything is measured again
    assert calls == ["degrade", "enhance", "evaluate", "enhance", "evaluate"]
    with pytest.raises(SystemExit):
        bench.main(["--resume", "--cases", "e2"])
    assert "--resume needs --workdir" in capsys.readouterr().err
