"""``vsrpipe estimate-kernel``: one scene's SR kernel (spectral fit or KernelGAN) written as a .npy file.

Looked up by the ``vsrpipe`` group (:mod:`vsr_pipeline.cli`), which turns every
:class:`~vsr_pipeline.errors.VsrError` into one sentence and its exit code.
"""

from __future__ import annotations

from contextlib import closing, contextmanager
from pathlib import Path

import click

from vsr_pipeline.errors import ConfigError, InputError, OutputError


def _check_output(path: Path, suffix: str, option: str, src: Path, overwrite: bool) -> None:
    from vsr_pipeline.io.source import check_file_output

    if path.suffix.lower() != suffix:
        raise ConfigError(f"{option} {str(path)!r} must end in {suffix}.")
    check_file_output(src, path, overwrite)


def _scene_frames(path: Path, scene: int, keep: int) -> tuple[list, int, int]:
    """Up to about 2·keep evenly spaced RGB frames of scene ``scene``; (frames, first, count).

    One pass over the source (a video or an image sequence): the scene detector answers
    frame by frame, so reading stops at the end of the scene asked for.
    """
    from vsr_pipeline.io.scenes import SceneConfig, SceneDetector
    from vsr_pipeline.io.source import open_source, probe_source

    info = probe_source(path)
    is_cut = SceneDetector(SceneConfig(), fps=float(info.fps or 25))
    kept, stride, count, current, first, prev = [], 1, 0, 0, 0, None
    with closing(iter(open_source(path, info))) as reader:  # closing stops the decode thread on break
        for frame in reader:
            if prev is not None and is_cut(prev, frame):
                current += 1
                if current > scene:
                    break
                first = frame.index
            prev = frame
            if current < scene:
                continue
            if count % stride == 0:
                kept.append(frame.rgb)
                if len(kept) >= 2 * keep:  # thin out: every other one, and keep half as many from now on
                    kept, stride = kept[::2], stride * 2
            count += 1
    if current < scene:
        raise ConfigError(
            f"--scene {scene} does not exist: {path} has {current + 1} scene(s), numbered from 0."
        )
    if not kept:
        raise InputError(f"Input {str(path)!r} holds no frames in scene {scene}.")
    return kept, first, count


@contextmanager
def _fallback_logged_here():
    """Drop the library's fallback log record while inside: the command prints its own warning, once."""
    import logging

    from vsr_pipeline.kernels import base

    def keep(record: logging.LogRecord) -> bool:
        return record.msg != base.FALLBACK_MESSAGE

    logger = logging.getLogger(base.__name__)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@click.command("estimate-kernel")  # the group adds its exit-code epilog when registering
@click.argument("input", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--out", "-o", "out", type=click.Path(path_type=Path, dir_okay=True), required=True, help="Where to write the kernel (.npy, float64, sums to 1; use it as -d kernel:FILE).")
@click.option("--png", "png", type=click.Path(path_type=Path, dir_okay=True), default=None, help="Also write a picture of the kernel (.png).")
@click.option("--scene", type=click.IntRange(min=0), default=0, show_default=True, help="Estimate from the N-th detected scene (0 is the first).")
@click.option("--scale", "-s", type=click.Choice(["2", "4"]), default="4", show_default=True, help="SR factor the kernel is for (spectral: fitted at that scale; kernelgan: x4 is derived from the x2 estimate).")
@click.option("--method", type=click.Choice(["learned", "spectral", "kernelgan"]), default="spectral", show_default=True, help="learned: a small network trained here reads the blur beyond bicubic, or says there is none (milliseconds); spectral: closed-form fit of the scene's power spectrum (milliseconds); kernelgan: KernelGAN (a minute or more; unreliable). See docs/kernel-estimation.md.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="kernelgan: training iterations (the schedule scales with them).  [default: 700 with --fast, 3000 with --reference]")
@click.option("--fast/--reference", default=None, help="kernelgan: our fast mode (the recipe's first 700 iterations, early stop; the default) or the published 3000-iteration recipe.")
@click.option("--seed", type=int, default=0, show_default=True, help="kernelgan: seed of the weights and crop draws (the spectral fit is deterministic).")
@click.option("--overwrite", "-y", is_flag=True, help="Replace --out/--png if they exist.")
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
def estimate_kernel(
    input: Path, out: Path, png: Path | None, scene: int, scale: str, method: str, iterations: int | None,
    fast: bool | None, seed: int, overwrite: bool, quiet: bool,
) -> None:
    """Estimate the blur (SR) kernel of one scene of the LR clip INPUT (a video, or an image
    sequence: a folder, frames/%06d.png or frames/*.png).

    The kernel is the whole SR kernel in the KernelGAN/DIV2KRK sense (correlate, keep every
    s-th pixel), ready for `--degradation kernel:FILE`. Scenes too small, flat or noisy to
    read a blur from fall back to the bicubic kernel, with a warning saying why. Example:

    \b
        vsrpipe estimate-kernel lr.mp4 --out k4.npy --png k4.png --scale 4 --scene 1
    """
    import numpy as np
    from PIL import Image

    from vsr_pipeline.io.files import atomic_output
    from vsr_pipeline.kernels.estimate import estimate_with
    from vsr_pipeline.kernels.kernelgan import KernelGANConfig
    from vsr_pipeline.kernels.metrics import kernel_image
    from vsr_pipeline.kernels.learned import LearnedConfig
    from vsr_pipeline.kernels.spectral import SpectralConfig

    if method != "kernelgan" and (fast is not None or iterations is not None):
        given = "--iterations" if iterations is not None else ("--fast" if fast else "--reference")
        raise ConfigError(f"{given} applies to --method kernelgan only; the {method} estimate has no training.")
    _check_output(out, ".npy", "--out", input, overwrite)
    if png is not None:
        _check_output(png, ".png", "--png", input, overwrite)
        if png.resolve() == out.resolve():
            raise OutputError(f"--png and --out are the same file {str(out)!r}; give two paths.")
    if method == "spectral":
        config = SpectralConfig()
    elif method == "learned":
        config = LearnedConfig()
    else:
        config = KernelGANConfig.fast(seed=seed) if fast in (None, True) else KernelGANConfig.reference(seed=seed)
        if iterations is not None:
            config = config.with_iterations(iterations)

    frames, first, count = _scene_frames(input, scene, config.max_frames)
    with _fallback_logged_here():  # the warning below says it once, with the scene
        result = estimate_with(frames, int(scale), config)
    if result.fallback:
        click.secho(f"Warning: using the bicubic kernel for scene {scene}: {result.fallback_reason}.", fg="yellow", err=True)

    # both files are written before either is published, so a failure leaves neither
    with atomic_output(out, replace=overwrite) as tmp_out:
        np.save(tmp_out, result.kernel, allow_pickle=False)  # np.save adds .npy only to names without it
        if png is not None:
            picture = Image.fromarray(kernel_image(result.kernel, cell=max(4, 200 // result.kernel.shape[0])))
            with atomic_output(png, replace=overwrite) as tmp_png:
                picture.save(tmp_png, format="PNG")
    if not quiet:
        what = "bicubic fallback" if result.fallback else {
            "spectral": "spectral fit", "learned": f"learned: {result.verdict}, A' = {result.spec}",
        }.get(method, f"KernelGAN, {result.iterations} iterations")
        kh, kw = result.kernel.shape
        click.echo(
            f"{out}: x{scale} kernel {kh}x{kw} from scene {scene} (frames {first}-{first + count - 1}), "
            f"{what}, {result.seconds:.1f} s",
            err=True,
        )
