"""The training loop: pixel-loss training and GAN (+ perceptual, + PGD-robust) fine-tuning.

One function, :func:`train`, reads top to bottom: build the data sampler, the network (from
scratch, ``init`` weights, or the run's checkpoint when resuming), the losses and the
optimisers; then for each step draw a batch, optionally perturb its LR input (PGD), update
the discriminator (GAN only) and the generator. Every ``ckpt_every`` steps it writes an
atomic checkpoint (``checkpoint.pt``: weights, optimisers, step, RNG states), a
self-describing safetensors export (``model-step{N}.safetensors`` and ``model.safetensors``),
and a line of validation PSNR to the log (``model.pth``, a plain state dict, for the
single-image ``compact`` architecture; see :mod:`vsr_pipeline.train.nets`). The loss log is ``log.jsonl`` (one JSON object
per line).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.files import atomic_output
from vsr_pipeline.train.data import DataConfig, DegradationConfig, WindowSampler
from vsr_pipeline.train.nets import EXPORTS, build_network, frames_for, load_init, save_export
from vsr_pipeline.train.losses import (
    GANLoss,
    PatchDiscriminator,
    PerceptualLoss,
    build_pixel_loss,
    pgd_perturb,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
LOSSES = ("mse", "l1", "charbonnier", "gan")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (saved into its checkpoint)."""

    out: str  # run folder: checkpoint.pt, log.jsonl, model*.safetensors
    name: str = "vsrnet-x4"  # model name written into the exported weights
    arch: str = "vsrnet"  # network architecture: vsrnet | compact (SRVGGNetCompact) | vdsr (pre-upsampling); see nets.py
    scale: int = 4  # SR factor
    features: int = 64  # feature channels
    blocks: int = 4  # vsrnet: residual blocks; compact: body convolutions; vdsr: convolutions
    loss: str = "mse"  # mse | l1 | charbonnier | gan (GAN + pixel + perceptual)
    steps: int = 10000  # total optimiser steps (the schedule ends here)
    batch: int = 16  # windows per step
    lr: float = 5e-4  # peak Adam learning rate of the network
    final_lr_ratio: float = 0.02  # cosine decay ends at lr * final_lr_ratio
    warmup: int = 200  # linear warm-up steps
    seed: int = 0  # seeds torch and the data sampler
    threads: int = 1  # torch CPU threads
    ckpt_every: int = 500  # steps between checkpoints, exports and validation
    log_every: int = 20  # steps between loss-log lines
    val_windows: int = 32  # fixed windows (from the training sources) for the PSNR monitor
    init: str | None = None  # weights to start from (.safetensors export or checkpoint.pt)
    # GAN fine-tuning (loss == "gan")
    pixel_loss: str = "l1"  # pixel term of the generator loss
    pixel_weight: float = 1.0  # weight of the pixel term
    perceptual_weight: float = 1.0  # weight of the ST-LPIPS term
    adv_weight: float = 0.01  # weight of the adversarial term
    d_lr: float = 1e-4  # discriminator learning rate
    d_features: int = 64  # discriminator width
    pgd_eps: float = 0.0  # L∞ radius of the PGD perturbation of the LR input (0 = off)
    pgd_steps: int = 1  # PGD ascent steps per batch
    data: DataConfig = field(default_factory=DataConfig)  # what the windows are cut from

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        d = json.loads(text)
        data = dict(d.pop("data"))
        deg = dict(data.pop("degradation"))
        deg["sigma_range"] = tuple(deg["sigma_range"])
        data = DataConfig(degradation=DegradationConfig(**deg), **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        return cls(data=data, **d)


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``lr·final_lr_ratio``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    ratio = config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return config.lr * ratio


def network_for(config: TrainConfig) -> nn.Module:
    """A fresh network for ``config`` (architecture, scale, width, depth, frames)."""
    return build_network(
        config.arch, scale=config.scale, frames=frames_for(config.arch, config.data.frames),
        features=config.features, blocks=config.blocks, name=config.name,
    )


def psnr_rgb(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB over all pixels of (B, C, H, W) tensors in [0, 1] (training monitor only)."""
    mse = torch.mean((pred.clamp(0, 1) - target) ** 2).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def validate(model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, scale: int) -> dict[str, float]:
    """Monitor PSNR of the network and of bicubic on fixed windows: lr (N, T, C, h, w), hr (N, C, sh, sw)."""
    was_training = model.training
    model.eval()
    preds = torch.cat([model(lr[i : i + 8]) for i in range(0, len(lr), 8)])
    model.train(was_training)
    bic = imresize(lr[:, lr.shape[1] // 2], scale=scale)
    return {"val_psnr": psnr_rgb(preds, hr), "val_psnr_bicubic": psnr_rgb(bic, hr)}


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, dict], None] | None = None,
    clips: Sequence[np.ndarray] | None = None,
    stills: Sequence[np.ndarray] | None = None,
) -> Path:
    """Run (or resume) a training run; returns the path of the final safetensors export.

    ``progress(step, metrics)`` is called after every step (the CLI draws a bar with it).
    ``clips`` (N, H, W, 3) / ``stills`` (H, W, 3) uint8 arrays replace the configured
    sources (tests pass synthetic data this way).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if config.loss not in LOSSES:
        raise ConfigError(f"Unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}.")
    gan = config.loss == "gan"

    data_cfg = dataclasses.replace(config.data, scale=config.scale, frames=frames_for(config.arch, config.data.frames))
    sampler = WindowSampler(data_cfg, seed=config.seed, clips=clips, stills=stills)
    val_sampler = WindowSampler(data_cfg, seed=config.seed + 10_000, clips=sampler.clips, stills=sampler.stills)
    val_lr, val_hr = val_sampler.sample(config.val_windows)

    model = network_for(config)
    export = out / EXPORTS[config.arch]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.99))
    disc = d_opt = perceptual = None
    if gan:
        disc = PatchDiscriminator(3, config.d_features)
        d_opt = torch.optim.Adam(disc.parameters(), lr=config.d_lr, betas=(0.5, 0.99))
        perceptual = PerceptualLoss()
        pixel = build_pixel_loss(config.pixel_loss)
        gan_loss = GANLoss()
    else:
        pixel = build_pixel_loss(config.loss)

    step = 0
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.is_file():
        state = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
        saved = TrainConfig.from_json(state["config"])
        if (saved.arch, saved.scale, saved.features, saved.blocks, saved.loss) != (
            config.arch, config.scale, config.features, config.blocks, config.loss
        ):
            raise ConfigError(f"--resume: the checkpoint in {out} was made with another architecture or loss ({saved.arch}, x{saved.scale}, {saved.loss}).")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if gan:
            disc.load_state_dict(state["disc"])
            d_opt.load_state_dict(state["d_opt"])
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log.info("resumed %s at step %d", out, step)
    elif config.init:
        load_init(model, Path(config.init))
        log.info("initialised from %s", config.init)
    elif resume:
        log.info("nothing to resume in %s; starting fresh", out)

    def checkpoint() -> None:
        state = {
            "step": step,
            "config": config.to_json(),
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(),
        }
        if gan:
            state["disc"], state["d_opt"] = disc.state_dict(), d_opt.state_dict()
        with atomic_output(ckpt_path) as tmp:
            torch.save(state, str(tmp))
        extra = {"vsrpipe.train_step": str(step), "vsrpipe.train_config": config.to_json()}
        save_export(model, export.with_name(f"{export.stem}-step{step:06d}{export.suffix}"), name=config.name, extra=extra)
        save_export(model, export, name=config.name, extra=extra)

    model.train()
    t0 = time.perf_counter()
    with open(out / LOG, "a", encoding="utf-8") as logf:

        def write(record: dict) -> None:
            logf.write(json.dumps(record) + "\n")
            logf.flush()

        while step < config.steps:
            lr_now = lr_at(step, config)
            for g in opt.param_groups:
                g["lr"] = lr_now
            lr_in, hr = sampler.sample(config.batch)  # (B, T, C, p, p), (B, C, s·p, s·p)
            metrics: dict[str, float] = {}
            if config.pgd_eps > 0:
                lr_in = pgd_perturb(model, lr_in, hr, eps=config.pgd_eps, steps=config.pgd_steps)
            fake = model(lr_in)  # (B, C, s·p, s·p)

            if gan:
                # Discriminator: real HR vs the generator's output (detached).
                d_opt.zero_grad(set_to_none=True)
                d_loss = gan_loss(disc(hr), True) + gan_loss(disc(fake.detach()), False)
                d_loss.backward()
                d_opt.step()
                metrics["d_loss"] = d_loss.item()
                disc.requires_grad_(False)
                l_pix = pixel(fake, hr)
                l_perc = perceptual(fake, hr)
                l_adv = gan_loss(disc(fake), True)
                disc.requires_grad_(True)
                loss = config.pixel_weight * l_pix + config.perceptual_weight * l_perc + config.adv_weight * l_adv
                metrics.update(pix=l_pix.item(), perc=l_perc.item(), adv=l_adv.item())
            else:
                loss = pixel(fake, hr)

            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            metrics["loss"] = loss.item()
            if progress is not None:
                progress(step, metrics)
            if step % config.log_every == 0 or step == config.steps:
                write({"step": step, "lr": lr_now, "time": round(time.perf_counter() - t0, 2), **metrics})
            if step % config.ckpt_every == 0 or step == config.steps:
                val = validate(model, val_lr, val_hr, config.scale)
                write({"step": step, **val})
                log.info("step %d: loss %.5f, val PSNR %.2f dB (bicubic %.2f)", step, loss.item(), val["val_psnr"], val["val_psnr_bicubic"])
                checkpoint()
    return export


def export_checkpoint(checkpoint: Path | str, dest: Path | str, *, name: str | None = None) -> Path:
    """Write the network of a ``checkpoint.pt`` as its export (vsrnet and vdsr: safetensors, compact: .pth)."""
    state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    config = TrainConfig.from_json(state["config"])
    model = network_for(config)
    model.load_state_dict(state["model"])
    dest = Path(dest)
    if dest.suffix != Path(EXPORTS[config.arch]).suffix:
        raise ConfigError(f"--export-only {dest}: a {config.arch} network is exported as {Path(EXPORTS[config.arch]).suffix}.")
    extra = {"vsrpipe.train_step": str(state["step"]), "vsrpipe.train_config": config.to_json()}
    save_export(model, dest, name=name or config.name, extra=extra)
    return dest
