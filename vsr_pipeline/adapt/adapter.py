"""The adaptation stage: one registered method, A' per scene, and the run report.

::

    adapter = Adapter(model, scale, AdaptConfig(method="consistency", degradation="gauss:sigma=2"))
    out = adapter.process(windows, frame_indices, scenes)   # (B, T, C, H, W) -> (B, C, oH, oW)
    adapter.report.write_json("run.json")

The method comes from :mod:`vsr_pipeline.adapt.registry`; the caller's model is never
modified (every method tunes a copy).
"""

from __future__ import annotations

import logging
import time
from typing import Callable

import torch
from torch import nn

from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.base import Context, Fetch, Forward, MethodResult, upscale
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.report import AdaptReport, FrameRecord
from vsr_pipeline.degrade.operator import Degradation, parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.limits import output_size

log = logging.getLogger(__name__)

# (scene, window (T, C, H, W)) -> A' for that scene: a Degradation, or a (kh, kw) kernel that
# resolves an "estimate" spec (e.g. the spectral estimate for the scene)
DegradationForScene = Callable[[int, torch.Tensor], "Degradation | torch.Tensor"]

MAX_SCENES = 256  # scene degradations kept (a long clip's old scenes are dropped)


class Adapter:
    """Adapt ``model`` to the clip and upscale: the stage between the windows and the writer.

    Args:
        model: the trained network (never modified; each method tunes a copy).
        scale: output scale (may differ from ``model.info.scale``; outputs are resized the
            runner's way, and A' is built at this scale).
        config: an :class:`AdaptConfig`.
        device: where tuning and inference run.
        degradation_for_scene: optional hook ``(scene, window) -> KernelEstimate | Degradation | kernel``,
            called once per scene; required for ``degradation="estimate"``. Default: the spec. An
            estimate's operator and verdict go to the report's ``scenes``.
        fetch: optional ``index -> (window (T, C, H, W), scene)`` for out-of-order requests
            with ``method="online"`` (VapourSynth); see :mod:`vsr_pipeline.adapt.online`.
        forward: optional output pass ``(net, windows) -> output in [0, 1]`` (the runner's tiled
            or fp16 pass); adaptation itself always runs in fp32 on whole frames or crops.

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
        forward: Forward | None = None,
    ) -> None:
        self.config = config
        self.scale = float(scale)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.hook = degradation_for_scene
        self.spec = registry.get(config.method)
        self.report = AdaptReport(method=config.method, degradation=config.degradation, scale=self.scale)
        self.base: Degradation | None = None
        self._scene_deg: dict[int, Degradation] = {}
        self.context = Context(self.model, self.scale, config, self.degradation, forward=forward, fetch=fetch)
        self.method = None
        if self.spec.module is None:
            return
        if self.spec.needs_dropout:
            from vsr_pipeline.adapt.uncertainty import check_dropout

            check_dropout(model)
        if not getattr(model.info, "trainable", True) or not any(True for _ in model.parameters()):
            raise ConfigError(f"The model '{model.info.name}' has no weights to adapt; use --adapt none or another model.")
        if self.scale <= 1:
            raise ConfigError(f"Adaptation needs an upscaling factor greater than 1, got {self.scale:g}.")
        self.base = parse_degradation(config.degradation, self.scale)
        if not self.base.resolved and degradation_for_scene is None:
            raise ConfigError(
                "--degradation estimate needs a per-scene kernel estimate; none is wired in, "
                "so give an explicit degradation such as bicubic or gauss:sigma=2."
            )
        self.method = self.spec.load()(self.context)  # random access: set ``context.fetch`` (online adaptation)
        self.spec.check_sequential(self.method)

    def reset(self) -> None:
        """Start a new clip: scene kernels, carried weights and the report start afresh."""
        self._scene_deg.clear()
        if self.method is not None:
            self.method.reset()
        self.report = AdaptReport(method=self.config.method, degradation=self.config.degradation, scale=self.scale)

    def degradation(self, scene: int, window: torch.Tensor) -> Degradation:
        """A' for ``scene``: the hook's answer (once per scene), else the spec."""
        if scene in self._scene_deg:
            return self._scene_deg[scene]
        deg = self.base
        source = "given"
        if self.hook is not None:
            got = self.hook(scene, window)
            if hasattr(got, "fallback_reason") and callable(getattr(got, "degradation", None)):  # a KernelEstimate
                source = f"fallback: {got.fallback_reason}" if got.fallback_reason else (got.verdict or "estimated")
                got = got.degradation()
            if isinstance(got, Degradation):
                deg = got
            else:
                deg = self.base.with_kernel(torch.as_tensor(got)) if self.base.kind == "estimate" else self.base
                if self.base.kind != "estimate":
                    log.warning("degradation_for_scene returned a kernel for a non-estimate spec; using '%s'", self.base.spec)
        if deg is None or not deg.resolved:
            raise ConfigError(f"No degradation is known for scene {scene}; the kernel estimate is missing.")
        if len(self._scene_deg) >= MAX_SCENES:
            self._scene_deg.clear()
        self._scene_deg[scene] = deg
        if self.base is not None and self.base.kind == "estimate":
            self.report.scenes[scene] = {"degradation": deg.spec, "source": source}
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
        """One window (1, T, C, H, W) -> (1, C, oH, oW) in [0, 1]; appends its FrameRecord."""
        t0 = time.perf_counter()
        if self.method is None:
            with torch.no_grad():
                out = upscale(self.model, window, output_size(*window.shape[-2:], self.scale))
            r = MethodResult(out.clamp(0, 1), float("nan"), float("nan"), 0, infer_seconds=time.perf_counter() - t0)
        else:
            r = self.method.frame(window, index, scene)
        seconds = time.perf_counter() - t0
        self.report.frames.append(
            FrameRecord(
                index=index, scene=scene, loss_before=r.loss_before, loss_after=r.loss_after, steps=r.steps,
                adapt_seconds=seconds - r.infer_seconds, infer_seconds=r.infer_seconds, fallback=r.fallback,
                mask_fraction=r.mask_fraction, replayed=r.replayed, unchanged=r.unchanged, guarded=r.guarded, lr=r.lr,
            )
        )
        return r.output
