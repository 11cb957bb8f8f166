"""The VapourSynth filter beside vs-mlrt's plugins: the same network, the same ONNX graph, through VapourSynth.

vs-mlrt (``vapoursynth-mlrt-ov``, ``vapoursynth-mlrt-ort`` from PyPI) runs an ONNX file on
clips: its ``ov.Model`` / ``ort.Model`` feed the network the planes of the clips they are
given, side by side, as one NCHW tensor. Here the built-in network is exported once as a
four-dimensional graph (the five frames' RGB planes as 15 channels) at the clip's size, and
vs-mlrt is handed the clip shifted by −2 … +2 frames (the end frames repeated, as
vsrpipe's ``edge="replicate"``). Rows, each a fresh Python process that builds the clip and
writes the first ``--frames`` frames to ``/dev/null`` with ``VideoNode.output`` (vspipe's own
writer; RGBS; start-up and model loading included):

  vsrpipe torch / openvino / onnxruntime   ``vsr_pipeline.vapoursynth.enhance(clip, runtime=…, output="RGBS")``
  vs-mlrt ov / ort                         ``core.ov.Model`` / ``core.ort.Model`` on the exported graph

The rows take turns run by run (interleaved); medians of ``--runs``. Both sides keep their
defaults (VapourSynth's own thread count, vs-mlrt's one stream, each runtime's threads).
Before timing, one frame of each vs-mlrt row is compared with vsrpipe's (max |Δ| on [0, 1]).

Not ``vspipe`` itself: ``vapoursynth-mlrt-ov`` bundles its own ``libopenvino``, and vspipe
loads the plugins before the script runs, so the ``openvino`` Python package can no longer
load in that process (its version check refuses the bundled library) and vsrpipe's
``runtime="openvino"`` fails there. Importing ``openvino`` before ``vapoursynth`` avoids it.

    .venv/bin/python benchmarks/bench_mlrt.py --frames 30 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OURS = ("torch", "openvino", "onnxruntime")
MLRT = ("ov", "ort")


class Planes(nn.Module):
    """(1, 5·3, H, W) -> the network's (1, 5, 3, H, W) window -> (1, 3, sH, sW): vs-mlrt's tensor layout."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return self.net(x.reshape(b, c // 3, 3, h, w))


def export(model: str, height: int, width: int, dst: Path) -> Path:
    """``model`` as an ONNX graph with vs-mlrt's layout at one LR size."""
    from vsr_pipeline.models.registry import load_model

    net = Planes(load_model(model, scale=4)).eval()
    with torch.no_grad():
        torch.onnx.export(net, (torch.rand(1, 15, height, width),), str(dst), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)
    return dst


SCRIPT = """\
import vapoursynth as vs
core = vs.core
args = globals()
clip = core.bs.VideoSource({clip!r})
clip = clip[: int(args["frames"])]
row = args["row"]
if row.startswith("vsrpipe-"):
    from vsr_pipeline.vapoursynth import enhance
    out = enhance(clip, model={model!r}, runtime=row[len("vsrpipe-"):], output="RGBS")
else:
    from vsr_pipeline.vapoursynth.formats import colour_info, to_rgbs
    rgb = to_rgbs(clip, colour_info(clip))  # the filter's own conversion: both sides see the same RGB
    n = rgb.num_frames
    def shifted(d):
        if d < 0:
            return rgb[0] * -d + rgb[: n + d]
        return rgb[d:] + rgb[-1] * d if d else rgb
    clips = [shifted(d) for d in range(-2, 3)]
    plugin = core.ov if row == "vs-mlrt-ov" else core.ort
    out = plugin.Model(clips, network_path={onnx!r})
out.set_output()
"""


def rows() -> list[str]:
    return [f"vsrpipe-{r}" for r in OURS] + [f"vs-mlrt-{r}" for r in MLRT]


RUN = """
import openvino, runpy, os, vapoursynth as vs  # openvino first: see the module doc
runpy.run_path({script!r}, init_globals={{"row": {row!r}, "frames": {frames}}})
with open(os.devnull, "wb") as sink:
    vs.get_output(0)[0].output(sink)
"""


def run_row(script: Path, row: str, frames: int) -> float:
    """Wall seconds of one process that builds ``row``'s clip and writes its frames to /dev/null."""
    t0 = time.perf_counter()
    code = RUN.format(script=str(script), row=row, frames=frames)
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{row} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def max_difference(script: Path, frames: int, frame: int) -> dict[str, float]:
    """max |vs-mlrt − vsrpipe (onnxruntime)| on frame ``frame``, per vs-mlrt row, in one process."""
    code = textwrap.dedent(f"""
        import openvino, json, runpy, numpy as np, vapoursynth as vs
        out = {{}}
        def plane(row):
            vs.clear_output()
            runpy.run_path({str(script)!r}, init_globals={{"row": row, "frames": {frames}}})
            f = vs.get_output(0)[0].get_frame({frame})
            return np.stack([np.asarray(f[p]) for p in range(3)])
        ref = plane("vsrpipe-onnxruntime")
        for r in {[f"vs-mlrt-{r}" for r in MLRT]!r}:
            out[r] = float(np.abs(np.clip(plane(r), 0, 1) - np.clip(ref, 0, 1)).max())
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"comparing the outputs failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(ROOT / "examples" / "sample.mp4"))
    ap.add_argument("--model", default="vsrnet-x4")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    import av

    with av.open(args.clip) as c:
        st = c.streams.video[0]
        height, width = st.codec_context.height, st.codec_context.width
    times: dict[str, list[float]] = {r: [] for r in rows()}
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export(args.model, height, width, Path(tmp) / f"{args.model}.onnx")
        script = Path(tmp) / "bench.vpy"
        script.write_text(SCRIPT.format(clip=str(Path(args.clip).resolve()), model=args.model, onnx=str(onnx)))
        diff = max_difference(script, args.frames, min(10, args.frames - 1))
        print(f"max |vs-mlrt - vsrpipe| on one frame: {diff}", flush=True)
        for r in range(args.runs):
            order = rows() if r % 2 == 0 else rows()[::-1]
            for row in order:
                times[row].append(run_row(script, row, args.frames))
                print(f"  run {r}: {row:22s} {times[row][-1]:6.1f} s", flush=True)
    med = {r: statistics.median(v) for r, v in times.items()}
    base = med["vsrpipe-torch"]
    print(f"\n| VapourSynth ({args.frames} frames {width}×{height} → ×4, {args.model}) | median s | fps | × vsrpipe torch |")
    print("|---|---|---|---|")
    for row in rows():
        print(f"| {row} | {med[row]:.1f} | {args.frames / med[row]:.2f} | {base / med[row]:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"frames": args.frames, "size": [width, height], "model": args.model,
                                         "seconds": times, "max_difference": diff}, indent=2))


if __name__ == "__main__":
    main()
