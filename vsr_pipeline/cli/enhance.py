"""``vsrpipe enhance``: upscale one file. Defaults come from the config dataclasses (one source of truth)."""

from __future__ import annotations

from pathlib import Path

import click

from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.config import KERNEL_METHODS, OBJECTIVES, OPTIMIZERS
from vsr_pipeline.adapt.config import default as adapt_default
from vsr_pipeline.cli.common import PROGRESS_MODES, fps_option, progress_bar
from vsr_pipeline.cli.help import SectionedCommand
from vsr_pipeline.config import EDGES, ON_ERROR, RUNTIMES, EncodeOptions, EnhanceConfig, RunnerConfig, field_default

_ADAPT_HELP = "Test-time adaptation: " + "; ".join(f"{s.name}: {s.summary}" for s in registry.METHODS.values()) + "."


def _d(cls, name):
    return field_default(cls, name)


# `enhance --help` (and `batch --help`) list the options in these sections
SECTIONS = {
    "Input and output": ["fps", "start", "duration", "on_error", "overwrite", "report", "resume", "segment_frames"],
    "Model and device": ["scale", "model", "device", "half", "tile", "tile_pad", "batch", "runtime", "edge", "scene_threshold"],
    "Adaptation": [
        "adapt", "degradation", "kernel_method", "adapt_optimizer", "adapt_lr", "lr_search", "guard", "patience", "max_steps", "backtrack",
        "steps_per_frame", "warmup", "budget", "objective", "mc_passes", "save_masks",
    ],
    "Encoding": ["backend", "codec", "crf", "preset", "pix_fmt", "encoder_args", "no_audio", "no_subtitles"],
    "Run control": ["progress_mode", "quiet"],
}


@click.option("--scale", "-s", type=float, default=_d(EnhanceConfig, "scale"), show_default=True, help="Output scale (may differ from the model's native scale).")
@click.option("--model", "-m", default=_d(EnhanceConfig, "model"), show_default=True, help="Registered model name (see `vsrpipe models`) or a model file: .pth/.safetensors (spandrel), .onnx, or ncnn .param (its .bin beside it).")
@click.option("--start", type=float, default=None, help="Process a section starting at this time (seconds).")
@click.option("--duration", "-t", type=float, default=None, help="Length of the section to process (seconds).")
@click.option("--device", default=_d(RunnerConfig, "device"), show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--half", is_flag=True, help="fp16 inference (CUDA only); adaptation steps stay fp32.")
@click.option("--tile", type=int, default=_d(RunnerConfig, "tile"), show_default=True, help="Process frames in LR tiles of this size (0 = whole frames). With --adapt the output pass is tiled; the adaptation steps still use whole frames or crops.")
@click.option("--tile-pad", type=int, default=_d(RunnerConfig, "tile_pad"), show_default=True, help="LR context pixels around each tile (with --tile).")
@click.option("--batch", type=int, default=_d(RunnerConfig, "batch"), show_default=True, help="Windows per forward pass.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=_d(RunnerConfig, "runtime"), show_default=True, help="What runs the network's output passes (not the writer, see --backend): torch, onnxruntime or openvino (extras [onnx], [openvino]); auto: the fastest installed one whose output matches torch's, timed on the first frames and named in the report. Adaptation steps always run in torch.")
@click.option("--edge", type=click.Choice(EDGES), default=_d(EnhanceConfig, "edge"), show_default=True, help="How windows are filled at clip edges and scene cuts.")
@click.option("--scene-threshold", type=float, default=_d(EnhanceConfig, "scene_threshold"), show_default=True, help="Scene-cut sensitivity (PySceneDetect content score); windows never mix scenes. 0 turns detection off.")
@click.option("--adapt", type=click.Choice(registry.NAMES), default=adapt_default("method"), show_default=True, help=_ADAPT_HELP)
@click.option("--degradation", default=adapt_default("degradation"), show_default=True, help="A' for adaptation: bicubic, gauss:sigma=2.0, aniso:l1=..,l2=..,theta=.., disk:radius=2, kernel:k.npy, or estimate (estimated per scene, see --kernel-method).")
@click.option("--kernel-method", type=click.Choice(KERNEL_METHODS), default=adapt_default("kernel_method"), show_default=True, help="How --degradation estimate finds each scene's blur: learned (a small network trained on the training clips reads the blur beyond bicubic, or says there is none; milliseconds), spectral (closed-form fit of the LR power spectrum) or kernelgan (KernelGAN fast mode, about a minute per scene; unreliable). See docs/kernel-estimation.md.")
@click.option("--adapt-optimizer", type=click.Choice(OPTIMIZERS), default=adapt_default("optimizer"), show_default=True, help="Adaptation optimiser (Lucas et al. use SGD; see docs/adaptation.md for why Adam is the default).")
@click.option("--adapt-lr", type=float, default=None, help="Adaptation learning rate.  [default: 3e-4 for adam, 0.005 for sgd]")
@click.option("--lr-search/--no-lr-search", default=adapt_default("lr_search"), show_default=True, help="Choose the learning rate per scene (online) or frame: try rates on the ladder --adapt-lr times 10 ... 0.01, from --adapt-lr outwards while each lowers the loss further, for a few steps on crops of one half of the frame; keep the one that lowers the loss most on crops of the other half.")
@click.option("--guard", type=float, default=adapt_default("guard"), show_default=True, help="Keep the trained weights for a scene (online) or frame unless a few steps lower the loss on held-out crops by at least this fraction (e.g. 0.02); 0 = off.")
@click.option("--patience", type=int, default=adapt_default("patience"), show_default=True, help="Early stopping: steps without improvement before stopping (consistency, masked, internal).")
@click.option("--max-steps", type=int, default=adapt_default("max_steps"), show_default=True, help="Cap on adaptation steps per frame (consistency, masked, internal).")
@click.option("--backtrack", type=float, default=adapt_default("backtrack"), show_default=True, help="Undo a step that brings no new minimum and retry it with the learning rate times this (0 = off, Algorithm 1 as published).")
@click.option("--steps-per-frame", type=int, default=adapt_default("steps_per_frame"), show_default=True, help="online: optimiser steps per frame; the weights carry over to the next frame within a scene.")
@click.option("--adapt-warmup", "warmup", type=int, default=adapt_default("warmup"), show_default=True, help="online: extra steps on the first frame of each scene, where the weights start from the trained ones (once per scene; not capped by --adapt-budget).")
@click.option("--adapt-budget", "budget", type=float, default=adapt_default("budget"), show_default=True, help="online: the steps may cost at most this fraction of a frame's inference; on small frames they use smaller crops (down to 24 px), on tiny ones fewer steps (0 = no cap).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default=adapt_default("objective"), show_default=True, help="Loss of online/consistency steps: data consistency, internal DoG pairs, or both.")
@click.option("--mc-passes", type=int, default=adapt_default("mc_passes"), show_default=True, help="masked: stochastic MC-dropout passes for the variance map.")
@click.option("--save-masks", type=click.Path(file_okay=False, path_type=Path), default=None, help="masked: write variance maps and masks as PNGs to this folder.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the run report (per-frame adaptation records) as JSON.")
@click.option("--backend", type=click.Choice(["pyav", "ffmpeg"]), default=_d(EncodeOptions, "backend"), show_default=True, help="Writer: PyAV in process, or the ffmpeg binary (PATH, else imageio-ffmpeg's).")
@click.option("--codec", "-c", default=None, help="Video encoder: libx264 (h264), libx265 (hevc), libsvtav1 (av1), libvpx-vp9 (vp9), ...  [default: libx264; libvpx-vp9 for .webm; libx265 for HDR10 input, which keeps its mastering display and light level]")
@click.option("--crf", type=int, default=None, help="Constant rate factor, within the encoder's range.  [default: 18 x264, 20 x265, 30 av1/vp9]")
@click.option("--preset", default=None, help="Encoder preset.  [default: medium for x264/x265, 8 for svt-av1]")
@click.option("--pix-fmt", default=None, help="Output pixel format (rgb24 or rgb48le for an image sequence).  [default: yuv420p for 8-bit input, yuv420p10le for deeper input; a sequence: 16-bit for deeper input]")
@click.option("--encoder-args", default=_d(EncodeOptions, "encoder_args"), help="Extra encoder options as '-key value' pairs, e.g. \"-tune film\"; unknown options are an error.")
@click.option("--no-audio", is_flag=True, help="Drop audio streams instead of copying them.")
@click.option("--no-subtitles", is_flag=True, help="Drop subtitle streams instead of copying them.")
@click.option("--on-error", type=click.Choice(ON_ERROR), default=_d(EnhanceConfig, "on_error"), show_default=True, help="Damaged input: stop with an error, or skip damaged frames and report how many were lost.")
@click.option("--overwrite", "-y", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def enhance_options(command):
    """Add every option above to ``command`` (``vsrpipe batch`` shares them: same names, same defaults)."""
    command.__click_params__ = getattr(command, "__click_params__", []) + list(enhance_options.__click_params__)
    return command


@click.command(cls=SectionedCommand, sections=SECTIONS)
@click.argument("input", type=click.Path(path_type=Path, dir_okay=True))
@click.argument("output", type=click.Path(path_type=Path, dir_okay=True))
@enhance_options
@fps_option()
@click.option("--resume", is_flag=True, help="Work in durable segments beside OUTPUT (a sequence OUTPUT: frame by frame); after a crash or kill, the same command with --resume finishes the file, identical to an uninterrupted run (docs/batch.md). Not for a video made from an image sequence.")
@click.option("--segment-frames", type=click.IntRange(min=1), default=1000, show_default=True, help="With --resume: about this many frames per segment (cut at scene cuts, or at any frame without --adapt).")
@click.option("--progress", "progress_mode", type=click.Choice(PROGRESS_MODES), default="auto", show_default=True, help="auto: a bar on a terminal, else a log line every few seconds (frames, fps, ETA); json: one JSON object per line on stdout (frames, total, fps, eta) for wrappers; none: nothing. --quiet silences all but json.")
def enhance(
    input: Path, output: Path, quiet: bool, no_audio: bool, no_subtitles: bool, adapt_lr: float | None,
    adapt_optimizer: str, save_masks: Path | None, resume: bool, segment_frames: int, progress_mode: str, **opts,
) -> None:
    """Upscale the video INPUT into OUTPUT (container from its extension: mp4, mkv, mov, webm).

    INPUT may be an image sequence (a folder, frames/%06d.png or frames/*.png; PNG/TIFF
    8/16-bit, DPX, EXR) and OUTPUT a numbered pattern such as out/%06d.png (PNG, TIFF,
    DPX: 16-bit for deeper input; EXR: float; numbered like the input). Every frame keeps its timestamp;
    audio and subtitles are copied; the output appears only when the run succeeds. An
    option that the chosen --adapt method would ignore is an error (exit 7), as is every
    bad value, before any frame is decoded.
    """
    from vsr_pipeline.api import enhance as api_enhance

    bar, update = progress_bar(quiet, progress_mode)
    try:
        options = dict(
            copy_audio=not no_audio,
            copy_subtitles=not no_subtitles,
            optimizer=adapt_optimizer,
            lr=adapt_lr,
            save_masks=str(save_masks) if save_masks is not None else None,
            **opts,
        )
        if resume:
            from vsr_pipeline.api import make_config
            from vsr_pipeline.batch.resume import enhance_resumable
            from vsr_pipeline.io.sequence import refuse_resume

            refuse_resume(input, output, opts.get("fps"))

            result = enhance_resumable(input, output, make_config(**options), progress=update, segment_frames=segment_frames)
        else:
            result = api_enhance(input, output, progress=update, **options)
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        w, h = result.output_size
        iw, ih = result.input_size
        lost = f", {result.lost_frames} lost to damage" if result.lost_frames else ""
        click.echo(
            f"{result.output}: {result.frames} frames{lost}, {iw}x{ih} -> {w}x{h} with {result.model} on "
            f"{result.device} in {result.seconds:.1f} s ({result.fps:.2f} fps)",
            err=True,
        )
        if result.adapt is not None:
            t = result.adapt["totals"]
            why = "no step lowered the loss"
            if t.get("guarded"):
                why = f"{t['guarded']} kept by --guard: the held-out crops did not improve" + (
                    "" if t["guarded"] == t["unchanged"] else f"; in {t['unchanged'] - t['guarded']} no step lowered the loss")
            same = f"; {t['unchanged']} of {t['frames']} frames unchanged ({why})" if t["unchanged"] else ""
            sources = t.get("scene_sources") or {}
            if sources:  # --degradation estimate: what each scene's estimate said
                same += "; scene blur: " + ", ".join(f"{n} {what}" for what, n in sorted(sources.items()))
            click.echo(
                f"adaptation ({result.adapt['method']}, {result.adapt['degradation']}): {t['steps']} steps, "
                f"{t['adapt_seconds']:.1f} s adapting, {t['fallbacks']} fallback(s){same}",
                err=True,
            )
