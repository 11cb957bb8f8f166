"""The test-material and measurement commands: ``vsrpipe degrade``, ``evaluate`` and ``compare``.

Looked up by the ``vsrpipe`` group (:mod:`vsr_pipeline.cli`), which adds the exit-code
epilog and turns every :class:`~vsr_pipeline.errors.VsrError` into one sentence and its
exit code, so the commands just raise them.
"""

from __future__ import annotations

from pathlib import Path

import click

from vsr_pipeline.cli.common import PROGRESS_MODES, fps_option
from vsr_pipeline.cli.common import progress_bar as _progress
from vsr_pipeline.errors import ConfigError


@click.command()  # the group adds its exit-code epilog when registering
@click.argument("hr", type=click.Path(path_type=Path, dir_okay=True))
@click.argument("out", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--scale", "-s", type=float, default=4, show_default=True, help="SR factor: the LR clip is this many times smaller (> 1).")
@click.option("--degradation", "-d", default="bicubic", show_default=True, help="Degradation spec: bicubic, gauss:sigma=S, aniso:l1=..,l2=..,theta=.., disk:radius=R, kernel:PATH.npy (see docs/degradations.md).")
@click.option("--noise", type=float, default=0.0, show_default=True, help="Add Gaussian noise of this standard deviation, in 8-bit units (5 = 5/255), to every LR frame.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed; a frame always gets the same noise for the same seed.")
@click.option("--crf", type=int, default=None, help="Constant rate factor for lossy material.  [default: lossless (x264 qp 0, x265/VP9 lossless mode)]")
@click.option("--codec", "-c", default=None, help="Video encoder: libx264 (h264), libx265 (hevc), libvpx-vp9 (vp9), ...  [default: libx264; libvpx-vp9 for .webm]")
@click.option("--preset", default=None, help="Encoder preset.  [default: medium for x264/x265]")
@click.option("--pix-fmt", default=None, help="Output pixel format (rgb24 or rgb48le for an image sequence).  [default: yuv444p (yuv444p10le for deeper input): exact LR size and no chroma blur; a sequence: 16-bit for deeper input]")
@click.option("--encoder-args", default="", help="Extra FFmpeg output options as '-key value' pairs.")
@click.option("--backend", type=click.Choice(["pyav", "ffmpeg"]), default="pyav", show_default=True, help="Writer: PyAV in process, or the ffmpeg binary.")
@click.option("--start", type=float, default=None, help="Degrade a section starting at this time (seconds); its timestamps start at 0.")
@click.option("--duration", "-t", type=float, default=None, help="Length of the section (seconds).")
@click.option("--no-audio", is_flag=True, help="Drop audio streams instead of copying them.")
@click.option("--no-subtitles", is_flag=True, help="Drop subtitle streams instead of copying them.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True, help="Damaged input: stop with an error, or skip damaged frames.")
@fps_option("HR", "needed to make a video of it, and sets the seconds of --start/--duration")
@click.option("--overwrite", "-y", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--progress", "progress_mode", type=click.Choice(PROGRESS_MODES), default="auto", show_default=True, help="auto: a bar on a terminal, else a log line every few seconds; json: one JSON object per line on stdout (frames, total, fps, eta); none: nothing.")
def degrade(
    hr: Path, out: Path, scale: float, degradation: str, noise: float, seed: int, crf: int | None,
    codec: str | None, preset: str | None, pix_fmt: str | None, encoder_args: str, backend: str,
    start: float | None, duration: float | None, no_audio: bool, no_subtitles: bool, on_error: str,
    fps: float | None, overwrite: bool, quiet: bool, progress_mode: str,
) -> None:
    """Make LR test material OUT from the clip HR: every frame blurred and downscaled by the
    degradation, optionally with noise.

    HR may be an image sequence (a folder, frames/%06d.png or frames/*.png) and OUT a
    numbered pattern such as lr/%06d.png (PNG, TIFF, DPX: 16-bit for deeper input; EXR:
    float; lossless), numbered like the input, as `enhance` takes them. Timestamps, audio
    and subtitles are kept as `enhance` keeps them; OUT appears only when the run succeeds.
    Example:

    \b
        vsrpipe degrade hr.mp4 lr.mp4 --scale 4 -d gauss:sigma=2.0 --noise 2
        vsrpipe degrade hr_frames/ lr.mkv --scale 4 --fps 24
    """
    from vsr_pipeline.config import EncodeOptions
    from vsr_pipeline.degrade.video import degrade_video

    encode = EncodeOptions(
        backend=backend, codec=codec, preset=preset, pix_fmt=pix_fmt, encoder_args=encoder_args,
        copy_audio=not no_audio, copy_subtitles=not no_subtitles,
    )
    bar, update = _progress(quiet, progress_mode)
    try:
        r = degrade_video(
            hr, out, scale=scale, degradation=degradation, noise=noise, crf=crf, seed=seed,
            overwrite=overwrite, encode=encode, start=start, duration=duration, on_error=on_error,
            progress=update, fps=fps,
        )
    finally:
        if bar is not None:
            bar.close()
    if not quiet:
        (iw, ih), (ow, oh) = r.input_size, r.output_size
        noise_text = f" + noise {r.noise:g}/255 (seed {r.seed})" if r.noise else ""
        lost = f", {r.lost_frames} lost to damage" if r.lost_frames else ""
        quality = "lossless" if r.lossless else f"crf {crf}" if crf is not None else "default quality"
        click.echo(
            f"{r.output}: {r.frames} frames{lost}, {iw}x{ih} -> {ow}x{oh} with {r.degradation} x{r.scale:g}{noise_text}; "
            f"{r.codec} {r.pix_fmt} {quality}, {r.seconds:.1f} s",
            err=True,
        )


def _check_report_path(path: Path | None, sources: tuple[Path, ...], overwrite: bool) -> None:
    from vsr_pipeline.io.source import check_file_output

    if path is None or str(path) == "-":
        return
    for src in sources:
        check_file_output(src, path, overwrite)


@click.command()  # the group adds its exit-code epilog when registering
@click.argument("out", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--reference", "-r", type=click.Path(path_type=Path, dir_okay=True), required=True, help="The ground-truth clip, a video or an image sequence (same frame size).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=True, allow_dash=True), default=None, help="Write the per-frame scores and means as JSON to FILE ('-': stdout).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=True), default=None, help="Write the per-frame scores and a mean row as CSV to FILE.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=True), default=None, help="Write a plot of per-frame PSNR to FILE (.png; .pdf and .svg work too).")
@click.option("--crop", type=click.IntRange(min=0), default=4, show_default=True, help="Border pixels removed before measuring (SR papers use the scale).")
@click.option("--lpips-weights", type=click.Path(path_type=Path, dir_okay=False), default=None, help="torchvision AlexNet weights for LPIPS.  [default: torch's hub cache; without them LPIPS is reported unavailable]")
@click.option("--no-perceptual", is_flag=True, help="Skip ST-LPIPS and LPIPS (PSNR and SSIM only; faster).")
@click.option("--reference-start", type=float, default=None, help="OUT is the section of the reference starting here (seconds), as made with degrade/enhance --start.")
@fps_option("OUT or --reference", "without it a sequence takes the other clip's rate when that is a video, else 25")
@click.option("--device", default="cpu", show_default=True, help="Where the perceptual networks run: cpu, cuda, cuda:N.")
@click.option("--summary", is_flag=True, help="Print only the mean row, not one row per frame.")
@click.option("--overwrite", "-y", is_flag=True, help="Replace existing --json/--csv/--plot files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table.")
def evaluate(
    out: Path, reference: Path, json_path: Path | None, csv_path: Path | None, plot_path: Path | None,
    crop: int, lpips_weights: Path | None, no_perceptual: bool, reference_start: float | None, fps: float | None,
    device: str, summary: bool, overwrite: bool, quiet: bool,
) -> None:
    """Score OUT against --reference frame by frame: PSNR and SSIM on Y, ST-LPIPS and LPIPS.

    Either clip may be an image sequence (a folder, frames/%06d.png or frames/*.png;
    PNG/TIFF 8/16-bit, DPX, EXR). Frames are matched by timestamp (within half a frame);
    both clips are streamed, never held whole in memory. The table goes to stdout (to
    stderr when --json - takes stdout). Example:

    \b
        vsrpipe evaluate sr.mp4 -r hr.mp4 --json sr.json --csv sr.csv --plot sr_psnr.png
        vsrpipe evaluate sr/%06d.png -r hr_frames/
    """
    from vsr_pipeline import evaluate as ev
    from vsr_pipeline.runner import resolve_device

    sources = (out, reference)
    for path in (json_path, csv_path, plot_path):
        _check_report_path(path, sources, overwrite)
    if plot_path is not None and plot_path.suffix.lower().lstrip(".") not in ev.plot_formats():
        raise ConfigError(f"Plot file {str(plot_path)!r} needs an extension matplotlib writes, such as .png, .pdf or .svg.")
    dev = resolve_device(device)

    bar, update = _progress(quiet)
    try:
        report = ev.evaluate_videos(
            out, reference, crop=crop, perceptual=not no_perceptual, lpips_weights=lpips_weights,
            progress=update, reference_start=reference_start, device=dev, fps=fps,
        )
    finally:
        if bar is not None:
            bar.close()
    if json_path is not None:
        if str(json_path) == "-":
            click.echo(report.to_json(), nl=False)
        else:
            ev.write_json(report, json_path)
    if csv_path is not None:
        ev.write_csv(report, csv_path)
    if plot_path is not None:
        ev.plot_psnr(report, plot_path)
    if not quiet:
        click.echo(ev.format_table(report, rows=not summary), err=json_path is not None and str(json_path) == "-")


@click.command()  # the group adds its exit-code epilog when registering
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True))
@click.option("--out", "-o", type=click.Path(path_type=Path, dir_okay=True), required=True, help="The figure to write (.png).")
@click.option("--crop", required=True, help="The region to enlarge: x,y,w,h in pixels of the frame (left, top, width, height).")
@click.option("--frame", "-f", type=click.IntRange(min=0), default=0, show_default=True, help="Frame number (from 0) taken from every video or sequence input; images are used as they are.")
@click.option("--reference", "-r", type=click.Path(path_type=Path, dir_okay=True), default=None, help="Ground truth (video, image sequence or image): adds its panel and PSNR/SSIM of the crop under every input.  [default: no metrics]")
@click.option("--reference-frame", type=click.IntRange(min=0), default=None, help="Frame of the reference to use.  [default: --frame]")
@click.option("--labels", default=None, help="Comma-separated captions, one per input (and optionally one for the reference).  [default: file names]")
@click.option("--zoom", "-z", type=click.IntRange(1, 64), default=None, help="Nearest-neighbour enlargement.  [default: the largest keeping a panel within 320 px]")
@click.option("--overwrite", "-y", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
def compare(
    inputs: tuple[Path, ...], out: Path, crop: str, frame: int, reference: Path | None,
    reference_frame: int | None, labels: str | None, zoom: int | None, overwrite: bool, quiet: bool,
) -> None:
    """Write a figure of the same zoomed crop of INPUTS side by side, as in SR papers.

    INPUTS are videos, image sequences (a folder or frames/%06d.png) or images
    (.png, .jpg, ...) of one size. Example:

    \b
        vsrpipe compare bicubic.mp4 ours.mp4 -r hr.mp4 --frame 10 --crop 300,120,64,48 -o fig.png
    """
    from vsr_pipeline.evaluate import compare_frames

    names = [s.strip() for s in labels.split(",")] if labels is not None else None
    r = compare_frames(
        inputs, out, frame=frame, crop=crop, reference=reference, labels=names, zoom=zoom,
        reference_frame=reference_frame, overwrite=overwrite,
    )
    if not quiet:
        w, h = r.size
        click.echo(f"{r.output}: {w}x{h} figure, crop zoomed x{r.zoom}", err=True)
        for p in r.panels:
            if p.psnr is not None:
                ssim_text = f", SSIM {p.ssim:.4f}" if p.ssim is not None else ""
                click.echo(f"  {p.label}: PSNR {p.psnr:.2f} dB{ssim_text}", err=True)
