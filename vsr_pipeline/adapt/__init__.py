"""Test-time adaptation: the network is tuned to each clip, self-supervised, before it upscales it.

One entry point for the pipeline::

    adapter = Adapter(model, scale, AdaptConfig(method="consistency", degradation="gauss:sigma=2"))
    out = adapter.process(windows, frame_indices, scenes)   # (B, T, C, H, W) -> (B, C, oH, oW)
    adapter.report.write_json("run.json")

Methods (``AdaptConfig.method``):

- ``none``: the trained network, as the runner would run it.
- ``consistency``: Algorithm 1 of Lucas et al. per frame (:mod:`.consistency`).
- ``masked``: MC-dropout artifact mask, Eq. 3 fine-tuning, Eq. 4 blend (:mod:`.masked`).
- ``online``: weights carried from frame to frame within a scene, few steps on crops
  (:mod:`.online`); the objective is ``AdaptConfig.objective``.
- ``internal``: Algorithm 1 on the ZSSR-style internal objective alone (:mod:`.internal`);
  ``objective="both"`` with ``consistency`` adds it to Eq. 2.

The caller's model is never modified: every method tunes a copy.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vsr_pipeline.adapt.config import METHODS, AdaptConfig
from vsr_pipeline.adapt.consistency import (
    FinetuneResult,
    adapt_consistency,
    check_degradation,
    finetune,
    trainable_copy,
    upscale,
)
from vsr_pipeline.adapt.internal import DoGLoss, internal_objective
from vsr_pipeline.adapt.masked import adapt_masked
from vsr_pipeline.adapt.online import Fetch, OnlineAdapter
from vsr_pipeline.adapt.uncertainty import check_dropout, save_mask_images
from vsr_pipeline.degrade.operator import Degradation, parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.runner import output_size

__all__ = ["AdaptConfig", "Adapter", "AdaptReport", "FrameRecord", "METHODS"]

log = logging.getLogger(__name__)

# (scene, window (T, C, H, W)) -> A' for that scene: a Degradation, or a (kh, kw) kernel that
# resolves an "estimate" spec (e.g. KernelGAN's estimate for the scene)
DegradationForScene = Callable[[int, torch.Tensor], "Degradation | torch.Tensor"]


@dataclass
class FrameRecord:
    """One frame of the run report."""

    index: int  # frame index as given to process()
    scene: int  # scene id as given to process()
    loss_before: float  # objective of the trained weights (online: first step's crops)
    loss_after: float  # objective of the weights used for the output (online: last step's crops)
    steps: int  # SGD updates made for this frame
    adapt_seconds: float  # time tuning (masked: including the MC-dropout passes)
    infer_seconds: float  # time in the output pass (0 when the tuning's own last pass is the output)
    fallback: bool = False  # diverged: the trained weights' output was used
    mask_fraction: float | None = None  # masked: fraction of output pixels in the mask
    replayed: int = 0  # online: earlier frames re-adapted for an out-of-order request


@dataclass
class AdaptReport:
    """Run report of an :class:`Adapter`: per-frame records plus totals; JSON-serialisable."""

    method: str
    degradation: str
    scale: float
    frames: list[FrameRecord] = field(default_factory=list)

    def totals(self) -> dict:
        """Sums and means over the frames."""
        n = len(self.frames)
        adapt = sum(f.adapt_seconds for f in self.frames)
        infer = sum(f.infer_seconds for f in self.frames)
        finite = [f for f in self.frames if math.isfinite(f.loss_before) and math.isfinite(f.loss_after)]
        return {
            "frames": n,
            "steps": sum(f.steps for f in self.frames),
            "fallbacks": sum(f.fallback for f in self.frames),
            "adapt_seconds": adapt,
            "infer_seconds": infer,
            "mean_loss_before": sum(f.loss_before for f in finite) / len(finite) if finite else None,
            "mean_loss_after": sum(f.loss_after for f in finite) / len(finite) if finite else None,
        }

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "degradation": self.degradation,
            "scale": self.scale,
            "totals": self.totals(),
            "frames": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(f).items()} for f in self.frames],
        }

    def write_json(self, path: Path | str) -> None:
        """Write :meth:`to_dict` as JSON (NaN losses become null)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


class Adapter:
    """Adapt ``model`` to the clip and upscale: the stage between the windows and the writer.

    Args:
        model: the trained network (never modified; each method tunes a copy).
        scale: output scale (may differ from ``model.info.scale``; outputs are resized the
            runner's way, and A' is built at this scale).
        config: an :class:`AdaptConfig`.
        device: where tuning and inference run.
        degradation_for_scene: optional hook ``(scene, window) -> Degradation | kernel``, called
            once per scene; required for ``degradation="estimate"``. Default: the spec.
        fetch: optional ``index -> (window (T, C, H, W), scene)`` for out-of-order requests
            with ``method="online"`` (VapourSynth); see :mod:`vsr_pipeline.adapt.online`.

    Raises ConfigError for a spec that does not parse at ``scale``, ``estimate`` without a
    hook, ``masked`` on a model that cannot host MC-dropout, and (at the first frame) a
    degradation that does not map the output size back to the input size.
    """

    def __init__(
        self,
        model: nn.Module,
        scale: float,
        config: AdaptConfig = AdaptConfig(),
        device: str | torch.device = "cpu",
        degradation_for_scene: DegradationForScene | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        self.config = config
        self.scale = float(scale)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.hook = degradation_for_scene
        self.report = AdaptReport(method=config.method, degradation=config.degradation, scale=self.scale)
        self.base: Degradation | None = None
        if config.method == "masked":
            check_dropout(model)
        if config.method != "none":
            if not getattr(model.info, "trainable", True) or not any(True for _ in model.parameters()):
                raise ConfigError(f"The model '{model.info.name}' has no weights to adapt; use --adapt none or another model.")
            if self.scale <= 1:
                raise ConfigError(f"Adaptation needs an upscaling factor greater than 1, got {self.scale:g}.")
            self.base = parse_degradation(config.degradation, self.scale)
            if not self.base.resolved and degradation_for_scene is None:
                raise ConfigError(
                    "--degradation estimate needs a per-scene kernel estimate (KernelGAN); none is wired in, "
                    "so give an explicit degradation such as bicubic or gauss:sigma=2."
                )
        self._scene_deg: dict[int, Degradation] = {}
        self.online = (
            OnlineAdapter(self.model, self.scale, config, self.degradation, fetch=fetch) if config.method == "online" else None
        )
        self.dog = DoGLoss(config.dog_levels, config.dog_sigma, config.dog_weight)

    def degradation(self, scene: int, window: torch.Tensor) -> Degradation:
        """A' for ``scene``: the hook's answer (once per scene), else the spec."""
        if scene in self._scene_deg:
            return self._scene_deg[scene]
        deg = self.base
        if self.hook is not None:
            got = self.hook(scene, window)
            if isinstance(got, Degradation):
                deg = got
            else:
                deg = self.base.with_kernel(torch.as_tensor(got)) if self.base.kind == "estimate" else self.base
                if self.base.kind != "estimate":
                    log.warning("degradation_for_scene returned a kernel for a non-estimate spec; using '%s'", self.base.spec)
        if deg is None or not deg.resolved:
            raise ConfigError(f"No degradation is known for scene {scene}; the kernel estimate is missing.")
        if len(self._scene_deg) > 256:
            self._scene_deg.clear()
        self._scene_deg[scene] = deg
        return deg

    def process(self, windows: torch.Tensor, frame_indices: list[int], scenes: list[int]) -> torch.Tensor:
        """Adapt and upscale a batch of windows (B, T, C, H, W) -> (B, C, round(sH), round(sW)) in [0, 1].

        ``frame_indices`` and ``scenes`` give each window's centre frame number and scene id;
        records are appended to :attr:`report`.
        """
        if windows.ndim != 5 or len(frame_indices) != len(windows) or len(scenes) != len(windows):
            raise ValueError(f"process expects (B, T, C, H, W) windows with one index and scene each, got {tuple(windows.shape)}")
        windows = windows.to(self.device, torch.float32)
        outs = [self._one(windows[b : b + 1], int(frame_indices[b]), int(scenes[b])) for b in range(len(windows))]
        return torch.cat(outs)

    def _one(self, window: torch.Tensor, index: int, scene: int) -> torch.Tensor:
        """One window (1, T, C, H, W) -> (1, C, oH, oW), clamped; appends its FrameRecord."""
        cfg = self.config
        method = cfg.method
        t0 = time.perf_counter()
        if method == "none":
            with torch.no_grad():
                out = upscale(self.model, window, output_size(*window.shape[-2:], self.scale))
            nan = float("nan")
            self.report.frames.append(FrameRecord(index, scene, nan, nan, 0, 0.0, time.perf_counter() - t0))
            return out.clamp(0, 1)
        deg = self.degradation(scene, window[0])
        if method == "online":
            r = self.online.frame(window[0], index, scene)
            self.report.frames.append(
                FrameRecord(index, scene, r.loss_before, r.loss_after, r.steps, r.adapt_seconds, r.infer_seconds, r.fallback, replayed=r.replayed)
            )
            return r.output[None]
        mask_fraction = None
        if method == "masked":
            m = adapt_masked(
                self.model, window, deg, self.scale, passes=cfg.mc_passes, p=cfg.mc_dropout, median=cfg.median,
                seed=cfg.seed + index, lr=cfg.lr, momentum=cfg.momentum, patience=cfg.patience, max_steps=cfg.max_steps,
                optimizer=cfg.optimizer, loss=cfg.mask_loss, backtrack=cfg.backtrack,
            )
            result, out = m.tune, m.output
            mask_fraction = float(m.mask.mean())
            if cfg.save_masks:
                save_mask_images(cfg.save_masks, index, m.variance[0], m.mask[0])
        elif method == "internal":
            out_hw = check_degradation(deg, tuple(window.shape[-2:]), self.scale)
            result = finetune(
                trainable_copy(self.model), internal_objective(window, deg, out_hw, self.dog),
                lr=cfg.lr, momentum=cfg.momentum, patience=cfg.patience, max_steps=cfg.max_steps, optimizer=cfg.optimizer,
                backtrack=cfg.backtrack,
            )
            out = result.output
        else:  # consistency, optionally with the internal objective beside Eq. 2
            extra = None
            if cfg.objective in ("internal", "both"):
                out_hw = check_degradation(deg, tuple(window.shape[-2:]), self.scale)
                extra = internal_objective(window, deg, out_hw, self.dog, with_output=False)
            result = adapt_consistency(
                self.model, window, deg, self.scale, lr=cfg.lr, momentum=cfg.momentum, patience=cfg.patience,
                max_steps=cfg.max_steps, extra=extra, extra_weight=cfg.internal_weight, optimizer=cfg.optimizer,
                backtrack=cfg.backtrack,
            )
            out = result.output
        self.report.frames.append(_record(index, scene, result, time.perf_counter() - t0, mask_fraction))
        return torch.nan_to_num(out, nan=0.0).clamp(0, 1)


def _record(index: int, scene: int, r: FinetuneResult, seconds: float, mask_fraction: float | None) -> FrameRecord:
    return FrameRecord(
        index=index, scene=scene, loss_before=r.loss_before, loss_after=r.loss_after, steps=r.steps,
        adapt_seconds=seconds, infer_seconds=0.0, fallback=r.diverged, mask_fraction=mask_fraction,
    )
