"""The `vsrpipe` command line. It owns the terminal: progress bars, tables, messages.

Exit codes: 0 ok · 1 internal error · 2 usage · 3 input · 4 output · 5 model · 6 damaged
input (--on-error stop) · 7 configuration · 130 interrupted (see vsr_pipeline.errors).
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import click

from vsr_pipeline import __version__
from vsr_pipeline.errors import EXIT_INTERRUPTED, VsrError

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 internal error, 2 usage error, 3 input error, 4 output error, "
    "5 model error, 6 damaged input (--on-error stop), 7 configuration error, 130 interrupted."
)


class VsrGroup(click.Group):
    """A click group that turns VsrError into one sentence and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VsrError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("\nInterrupted; nothing was written to the output path.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, show the traceback only when asked
            click.secho(f"Internal error: {type(exc).__name__}: {exc}", fg="red", err=True)
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            else:
                click.echo("Run with -v for the traceback, and please report it.", err=True)
            ctx.exit(1)


@click.group(cls=VsrGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vsrpipe")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """vsrpipe: video super-resolution that adapts its network to each clip."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")


def _progress_bar(quiet: bool):
    """A tqdm bar with fps and ETA, or None when quiet or not on a terminal."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(unit="frame", dynamic_ncols=True, leave=False, smoothing=0.1)

    def update(done: int, expected: int | None) -> None:
        if expected and bar.total != expected:
            bar.total = expected
            bar.refresh()
        bar.update(done - bar.n)

    return bar, update


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("input", type=click.Path(path_type=Path, dir_okay=True))
@click.argument("output", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--scale", "-s", type=float, default=4, show_default=True, help="Output scale (may differ from the model's native scale).")
@click.option("--model", "-m", default=None, help="Registered model name (see `vsrpipe models`) or a .pth/.safetensors file.  [default: vsrnet-x4]")
@click.option("--start", type=float, default=None, help="Process a section starting at this time (seconds).")
@click.option("--duration", "-t", type=float, default=None, help="Length of the section to process (seconds).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--half", is_flag=True, help="fp16 inference (CUDA only).")
@click.option("--tile", type=int, default=0, show_default=True, help="Process frames in LR tiles of this size (0 = whole frames).")
@click.option("--tile-pad", type=int, default=16, show_default=True, help="LR context pixels around each tile.")
@click.option("--batch", type=int, default=1, show_default=True, help="Windows per forward pass.")
@click.option("--edge", type=click.Choice(["replicate", "reflect"]), default="replicate", show_default=True, help="How windows are filled at clip edges and scene cuts.")
@click.option("--scene-threshold", type=float, default=27.0, show_default=True, help="Scene-cut sensitivity (PySceneDetect content score); windows never mix scenes. 0 turns detection off.")
@click.option("--adapt", type=click.Choice(["none", "consistency", "masked", "online", "internal"]), default="none", show_default=True, help="Test-time adaptation: consistency (Lucas et al. Algorithm 1, per frame), masked (GAN-artifact mask), online (weights carried frame to frame), internal (ZSSR-style pairs).")
@click.option("--degradation", default="bicubic", show_default=True, help="A' for adaptation: bicubic, gauss:sigma=2.0, aniso:l1=..,l2=..,theta=.., disk:radius=2, kernel:k.npy, or estimate (estimated per scene, see --kernel-method).")
@click.option("--kernel-method", type=click.Choice(["spectral", "kernelgan"]), default="spectral", show_default=True, help="How --degradation estimate finds each scene's kernel: spectral (closed-form fit of the LR power spectrum, milliseconds) or kernelgan (KernelGAN fast mode, about a minute per scene; unreliable, see docs/kernel-estimation.md).")
@click.option("--adapt-optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True, help="Adaptation optimiser (Lucas et al. use SGD; see docs/adaptation.md for why Adam is the default).")
@click.option("--adapt-lr", type=float, default=None, help="Adaptation learning rate.  [default: 3e-4 for adam, 0.005 for sgd]")
@click.option("--patience", type=int, default=2, show_default=True, help="Early stopping: steps without improvement before stopping (consistency, masked, internal).")
@click.option("--max-steps", type=int, default=100, show_default=True, help="Cap on adaptation steps per frame (consistency, masked, internal).")
@click.option("--backtrack", type=float, default=0.0, show_default=True, help="Undo a step that brings no new minimum and retry it with the learning rate times this (0 = off, Algorithm 1 as published).")
@click.option("--steps-per-frame", type=int, default=2, show_default=True, help="online: optimiser steps per frame; the weights carry over to the next frame within a scene.")
@click.option("--objective", type=click.Choice(["consistency", "internal", "both"]), default="consistency", show_default=True, help="Loss of online/consistency steps: data consistency, internal DoG pairs, or both.")
@click.option("--mc-passes", type=int, default=50, show_default=True, help="masked: stochastic MC-dropout passes for the variance map.")
@click.option("--save-masks", type=click.Path(file_okay=False, path_type=Path), default=None, help="masked: write variance maps and masks as PNGs to this folder.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the run report (per-frame adaptation records) as JSON.")
@click.option("--backend", type=click.Choice(["pyav", "ffmpeg"]), default="pyav", show_default=True, help="Writer: PyAV in process, or the ffmpeg binary (PATH, else imageio-ffmpeg's).")
@click.option("--codec", "-c", default=None, help="Video encoder: libx264 (h264), libx265 (hevc), libsvtav1 (av1), libvpx-vp9 (vp9), ...  [default: libx264; libvpx-vp9 for .webm]")
@click.option("--crf", type=int, default=None, help="Constant rate factor.  [default: 18 x264, 20 x265, 30 av1/vp9]")
@click.option("--preset", default=None, help="Encoder preset.  [default: medium for x264/x265, 8 for svt-av1]")
@click.option("--pix-fmt", default=None, help="Output pixel format.  [default: yuv420p for 8-bit input, yuv420p10le for deeper input]")
@click.option("--encoder-args", default="", help="Extra FFmpeg output options as '-key value' pairs, e.g. \"-tune film\".")
@click.option("--no-audio", is_flag=True, help="Drop audio streams instead of copying them.")
@click.option("--no-subtitles", is_flag=True, help="Drop subtitle streams instead of copying them.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True, help="Damaged input: stop with an error, or skip damaged frames and report how many were lost.")
@click.option("--overwrite", "-y", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def enhance(input: Path, output: Path, quiet: bool, no_audio: bool, no_subtitles: bool, model: str | None, adapt_lr: float | None, adapt_optimizer: str, save_masks: Path | None, **opts) -> None:
    """Upscale the video INPUT into OUTPUT (container from its extension: mp4, mkv, mov, webm).

    Every frame keeps its timestamp; audio and subtitles are copied; the output appears
    only when the run succeeds.
    """
    from vsr_pipeline.api import enhance as api_enhance
    from vsr_pipeline.pipeline import DEFAULT_MODEL

    opts = {k.replace("-", "_"): v for k, v in opts.items()}
    bar, update = _progress_bar(quiet)
    try:
        result = api_enhance(
            input,
            output,
            model=model or DEFAULT_MODEL,
            copy_audio=not no_audio,
            copy_subtitles=not no_subtitles,
            optimizer=adapt_optimizer,
            lr=adapt_lr if adapt_lr is not None else (3e-4 if adapt_optimizer == "adam" else 0.005),
            save_masks=str(save_masks) if save_masks is not None else None,
            progress=update,
            **opts,
        )
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
            click.echo(
                f"adaptation ({result.adapt['method']}, {result.adapt['degradation']}): {t['steps']} steps, "
                f"{t['adapt_seconds']:.1f} s adapting, {t['fallbacks']} fallback(s)",
                err=True,
            )


@main.command()
def models() -> None:
    """List the registered models (name, native scale, frames, package)."""
    from vsr_pipeline.models.registry import available_models

    found = available_models()
    rows = [(name, f"x{r.entry.scale}" + (" (any)" if r.entry.any_scale else ""), str(r.entry.frames), r.package, r.entry.description) for name, r in found.items()]
    headers = ("name", "scale", "frames", "package", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# Commands that live beside the stage they drive -----------------------------------------
def _register() -> None:
    from vsr_pipeline.train.cli import train

    main.add_command(train)

    from vsr_pipeline.tools_cli import compare, degrade, evaluate

    for command in (degrade, evaluate, compare):
        command.epilog = EXIT_CODES_HELP
        main.add_command(command)

    from vsr_pipeline.adapt.kernel_cli import estimate_kernel_command

    estimate_kernel_command.epilog = EXIT_CODES_HELP
    main.add_command(estimate_kernel_command)


_register()

if __name__ == "__main__":
    main()
