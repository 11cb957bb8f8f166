"""Tiled, batched inference of a model on CPU or CUDA, through a runtime (:mod:`vsr_pipeline.runtimes`).

Frames larger than memory are cut into LR tiles with ``tile_pad`` pixels of context on
each side; every tile is upscaled and only its core is kept, so a convolutional network
whose receptive field fits in the pad gives exactly the untiled result (no seams).
A model serving a scale other than its native one has its stitched output resized with
MATLAB bicubic to the requested size. Tiling, resizing and batching live here; the
runtime (torch, ONNX Runtime, OpenVINO, or ``auto``: the fastest that gives the same
output, see :mod:`vsr_pipeline.runtimes.auto`) only runs each forward pass.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError, VsrError
from vsr_pipeline.limits import output_size
from vsr_pipeline.models.base import ModelInfo
from vsr_pipeline.runtimes import Runtime, auto, build_runtime, usable
from vsr_pipeline.runtimes.auto import Choice, trial

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; other names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"Unknown device {name!r}; use auto, cpu, cuda or cuda:N.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    return device


def check_model_options(info: ModelInfo, config: RunnerConfig) -> None:
    """Refuse the options ``info``'s model cannot honour; warn about the ones it advises against.

    ``--half`` on a model that does not support fp16 and ``--tile`` on one that tiles
    itself (``tiling == "internal"``) are one ConfigError sentence each; ``--tile`` on one
    whose tiling is ``"discouraged"`` (it reads context from the whole frame, so tiles may
    show seams) runs as asked, with a warning naming the model. Independent of the device.
    """
    if config.half and not getattr(info, "supports_half", True):
        raise ConfigError(
            f"Model {info.name!r} does not support fp16 inference (its architecture is known to fail in half precision); drop --half."
        )
    tiling = getattr(info, "tiling", "supported")
    if config.tile and tiling == "internal":
        raise ConfigError(f"Model {info.name!r} tiles its input itself, so --tile cannot be used with it; drop --tile.")
    if config.tile and tiling == "discouraged":
        log.warning(
            "model %r reads context from the whole frame, so --tile %d may leave visible seams between tiles; "
            "use whole frames (no --tile) where memory allows", info.name, config.tile,
        )


class Runner:
    """Run a model on batches of windows: (B, T, C, H, W) -> (B, C, round(sH), round(sW)) in [0, 1].

    ``scale`` is the requested output scale; the model's native ``info.scale`` is used
    for the network itself. The caller's ``model`` stays fp32 (adaptation tunes copies
    of it); with ``half`` the torch runtime keeps its own fp16 copy for plain inference and
    runs other networks handed to :meth:`run` (adapted copies) under fp16 autocast.
    ``adapted``: most output passes will run adapted copies (online adaptation), so ``auto``
    times the runtimes that way.
    """

    def __init__(self, model: nn.Module, scale: float, config: RunnerConfig = RunnerConfig(), *, adapted: bool = False) -> None:
        self.config = config
        check_model_options(model.info, config)
        self.device = resolve_device(config.device)
        if config.half and self.device.type != "cuda":
            raise ConfigError("--half needs a CUDA device; fp16 on the CPU is slower and less accurate.")
        self.master = model.to(self.device).eval()
        self.model = self.master
        self.info = model.info
        self.scale = scale
        self.native = float(self.info.scale)
        self.adapted = adapted
        self.choice: Choice | None = None  # the runtime in use and how it was chosen; None until the first pass with auto
        self.runtime: Runtime | None = None
        self._tiles_on: Runtime | None = None  # the runtime of the tiled pass under way (auto's trial tries several)
        if config.runtime != "auto":
            self.runtime = build_runtime(config.runtime, self.master, self.device, half=config.half)
            self.choice = Choice(config.runtime, asked=config.runtime)
        self._first = True  # the first output is checked for NaN / infinity (later ones are cleaned, not checked)

    @property
    def plain(self) -> bool:
        """True when :meth:`run` is a plain fp32 torch forward of whole frames (no tiles, no fp16, runtime torch)."""
        return not self.config.tile and not self.config.half and self.config.runtime == "torch"

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """Upscale the centre frames of ``windows`` (B, T, C, H, W) with the loaded model; float32 on the runner's device."""
        return self.run(self.model, windows)

    def report(self) -> dict:
        """The runtime for the run report: name, what was asked, and ``auto``'s trial (empty before the first pass)."""
        if self.choice is None:
            return {"name": None, "asked": self.config.runtime}
        return self.choice.to_dict()

    @torch.inference_mode()
    def run(self, net: nn.Module, windows: torch.Tensor) -> torch.Tensor:
        """Upscale ``windows`` (B, T, C, H, W) with ``net`` (the model or an adapted copy) -> (B, C, oH, oW) in [0, 1]."""
        frames = getattr(net.info, "frames", self.info.frames)
        if frames == 1:
            t = windows.shape[1] // 2
            windows = windows[:, t : t + 1]
        elif windows.shape[1] != frames:
            raise ValueError(f"model reads {frames} frames, got windows of {windows.shape[1]}")
        x = windows.to(self.device, torch.float32, non_blocking=True)
        h, w = x.shape[-2:]
        tuned = None if net is self.master else net
        if self.runtime is None:
            y = self._choose(x, tuned)
        else:
            y = self._pass(self.runtime, x, tuned)
        if self._first:
            self._check_first(y)
        target = output_size(h, w, self.scale)
        if tuple(y.shape[-2:]) != target:
            y = imresize(y, out_shape=target)
        return torch.nan_to_num(y, nan=0.0).clamp_(0.0, 1.0)

    def _choose(self, x: torch.Tensor, tuned: nn.Module | None) -> torch.Tensor:
        """``auto``: build every usable runtime, time them on this batch, keep the chosen one; its output."""
        runtimes: dict[str, Runtime] = {}
        failed: dict[str, str] = {}
        if x.shape[-2] * x.shape[-1] < auto.MIN_PIXELS:
            self.runtime = build_runtime("torch", self.master, self.device, half=self.config.half)
            self.choice = Choice("torch", note=f"frames under {auto.MIN_PIXELS} px stay on torch (no trial)")
            return self._pass(self.runtime, x, tuned)
        tiling = (self.config.tile, self.config.tile_pad) if self.config.tile else (0, 0)
        key = auto.trial_key(self.master, tuple(x.shape), self.device, self.adapted or tuned is not None, tiling)
        earlier = auto.recall(key)
        if earlier is not None:
            try:
                self.runtime = build_runtime(earlier.runtime, self.master, self.device, half=self.config.half)
                self.choice = earlier
                return self._pass(self.runtime, x, tuned)
            except ConfigError:  # it could be built then and not now: decide again
                self.runtime = None
        for name in usable(self.device, self.config.half):
            try:
                runtimes[name] = build_runtime(name, self.master, self.device, half=self.config.half)
            except ConfigError as exc:
                failed[name] = str(exc)
        probe = tuned if tuned is not None else (self.master if self.adapted else None)
        passes = {name: (lambda rt=rt: self._pass(rt, x, probe)) for name, rt in runtimes.items()}
        if len(passes) == 1:
            choice, y = Choice("torch"), self._pass(runtimes["torch"], x, tuned)
        else:
            choice, y = trial(passes)  # the chosen runtime's output of this batch (``probe`` has ``tuned``'s weights)
        choice.failed.update(failed)
        auto.remember(key, choice)
        self.choice, self.runtime = choice, runtimes[choice.runtime]
        return y

    def _pass(self, runtime: Runtime, x: torch.Tensor, net: nn.Module | None) -> torch.Tensor:
        """One output pass of ``x`` (B, T, C, H, W) through ``runtime``, tiled when asked -> (B, C, sH, sW) float32."""
        h, w = x.shape[-2:]
        tile = self.config.tile
        if tile and (h > tile or w > tile):
            self._tiles_on = runtime
            return self._tiled(net, x, tile, self.config.tile_pad)
        return runtime.run(x, net)

    def _check_first(self, y: torch.Tensor) -> None:
        """VsrError when the first output holds NaN or infinity: the cleaning below would make it black."""
        if not bool(torch.isfinite(y).all()):
            cause = (
                "fp16 arithmetic overflows with this model; run without --half" if self.config.half else
                "the network's arithmetic overflows although its weights are finite, so the model is most likely broken; try another model"
            )
            raise VsrError(
                f"Model {self.info.name!r} gave NaN or infinite values for the first frame, so the video would come out black: {cause}."
            )
        self._first = False

    def _tiled(self, net: nn.Module | None, x: torch.Tensor, tile: int, pad: int) -> torch.Tensor:
        """Tiles of ``x`` with ``pad`` px of context through ``self._tiles_on`` (the runtime of this pass), stitched.

        Each tile's context starts at a multiple of the model's ``multiple_of``, so a network
        that groups pixels in blocks of that size (pixel-unshuffle, attention windows) sees
        the same grouping as on the whole frame and the stitched result matches it.
        """
        runtime = self._tiles_on
        h, w = x.shape[-2:]
        s = self.native
        m = max(1, getattr(self.info, "multiple_of", 1))
        out = None
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                bottom, right = min(top + tile, h), min(left + tile, w)
                t0, l0 = max(top - pad, 0) // m * m, max(left - pad, 0) // m * m
                t1, l1 = min(bottom + pad, h), min(right + pad, w)
                y = runtime.run(x[..., t0:t1, l0:l1], net)  # (B, C, s*(t1-t0), s*(l1-l0))
                if out is None:
                    out = y.new_empty(*y.shape[:2], round(h * s), round(w * s))
                oy, ox = round((top - t0) * s), round((left - l0) * s)
                hh, ww = round((bottom - top) * s), round((right - left) * s)
                out[..., round(top * s) : round(top * s) + hh, round(left * s) : round(left * s) + ww] = y[
                    ..., oy : oy + hh, ox : ox + ww
                ]
        assert out is not None
        return out
