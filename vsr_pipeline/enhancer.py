"""The enhancement stage: model, per-scene kernel estimation, adaptation and the runner, built once.

Every driver (``vsrpipe enhance``, the VapourSynth filter, batch workers) builds one
:class:`Enhancer` from a :class:`~vsr_pipeline.config.StageConfig` and feeds it windows::

    stage = Enhancer(StageConfig(model="vsrnet-x4", scale=4, adapt=AdaptConfig(method="online")))
    out = stage.process(windows, indices, scenes)   # (B, T, C, H, W) -> (B, C, oH, oW) in [0, 1]
    stage.reset()                                   # the next clip: carried state forgotten, model kept

The stage owns the model and adaptation; the driver owns I/O, windows and progress. Frames
follow the pipeline's contract: RGB float32 in [0, 1], a window (T=5, C, H, W) with its
target at index 2. Calls are serialised by a lock, so drivers that ask from several
threads (VapourSynth) never run two passes of one model at once.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable

import torch
from torch import nn

from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.base import Fetch
from vsr_pipeline.config import StageConfig
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.windows import WINDOW_FRAMES
from vsr_pipeline.limits import check_frame_memory
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.runner import Runner

log = logging.getLogger(__name__)


class Enhancer:
    """The reusable stage between windows and output frames.

    Args:
        config: what to build (model, scale, runner, adaptation, kernel estimation).
        model: an already built model to use instead of loading ``config.model`` (tests,
            or a caller that shares one loaded network).

    Raises :class:`~vsr_pipeline.errors.VsrError` subclasses (one sentence each) for an
    unknown model, a bad device, a degradation that does not parse at the scale, or an
    adaptation method the model cannot host — before any frame is read.
    """

    def __init__(self, config: StageConfig = StageConfig(), *, model: nn.Module | None = None) -> None:
        self.config = config
        self.model = model if model is not None else load_model(config.model, scale=config.scale)
        self.method_spec = registry.get(config.adapt.method)
        online = self.method_spec.sequential  # its output pass is separate from its steps: a fast runtime pays off
        self.runner = Runner(self.model, config.scale, config.runner, adapted=online)
        self.kernels = _kernel_estimator(config)
        self.adapter: Adapter | None = None
        if config.adapt.method != "none":
            self.adapter = Adapter(
                self.model, config.scale, config.adapt, device=self.runner.device,
                degradation_for_scene=self.kernels.estimate_for_scene if self.kernels is not None else None,
                forward=None if self._objective_output(online) else self.runner.run,
            )
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        """The model's registry name."""
        return self.model.info.name

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.runner.device

    @property
    def frames(self) -> int:
        """Frames per window the stage expects (:data:`~vsr_pipeline.io.windows.WINDOW_FRAMES`; single-image models get the centre frame)."""
        return WINDOW_FRAMES

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the output frame for an input frame of ``height`` × ``width``."""
        return self.config.output_size(height, width)

    def check_frame_size(self, width: int, height: int, flags: tuple[str, str] = ("--scale", "--tile")) -> None:
        """ConfigError when ``width`` × ``height`` output frames need more memory than this stage may use.

        Whole-frame runs are capped at :data:`~vsr_pipeline.limits.MAX_UNTILED_FRAME_BYTES`, tiled
        ones at a share of the machine's memory; ``flags`` names the scale and tile options
        in the driver's terms. Drivers call it before decoding anything.
        """
        check_frame_memory(width, height, scale=self.config.scale, tile=self.config.runner.tile, flags=flags)

    @property
    def fetch(self) -> Fetch | None:
        """``index -> (window (T, C, H, W), scene)``: random access for online adaptation's out-of-order requests."""
        return self.adapter.context.fetch if self.adapter is not None else None

    @fetch.setter
    def fetch(self, fetch: Fetch | None) -> None:
        if self.adapter is not None:
            self.adapter.context.fetch = fetch

    def random_access(self, fetch: Fetch | None, scene_start: Callable[[int], int] | None = None) -> None:
        """Hand the stage random access for frames asked out of order (online adaptation replays).

        ``fetch(index) -> (window (T, C, H, W), scene)``; ``scene_start(index)`` gives the
        first frame of ``index``'s scene when the driver knows it (it saves walking back).
        """
        if self.adapter is not None:
            self.adapter.context.fetch = fetch
            self.adapter.context.scene_start = scene_start

    def exclusive(self) -> threading.RLock:
        """The stage's lock: hold it to make several calls one step (e.g. hand over frames, then process)."""
        return self._lock

    def replay_range(self, index: int, scene: int, *, hold: bool = False) -> range:
        """The earlier frames the stage would re-adapt to serve frame ``index`` now (empty unless online and out of order).

        ``hold=True`` keeps the state that range starts from until :meth:`release` (``index``),
        so that exactly those frames are enough when the request is answered later.
        """
        method = self.adapter.method if self.adapter is not None else None
        with self._lock:
            return method.replay_range(index, scene, hold=hold) if self.method_spec.sequential else range(index, index)

    def release(self, index: int) -> None:
        """Let go of what :meth:`replay_range` held for ``index``."""
        method = self.adapter.method if self.adapter is not None else None
        with self._lock:
            if self.method_spec.sequential:
                method.release(index)

    def _objective_output(self, online: bool) -> bool:
        """True when adaptation keeps its objective's own torch output (no separate output pass).

        So it does with a plain torch runner, and with ``--runtime auto`` for the per-frame
        methods, whose objective already made the frame's output. Online adaptation's output
        pass is separate from its steps, so under ``auto`` it goes through the runner, whose
        trial times the runtimes on the adapted copy's weights fed as graph inputs.
        """
        r = self.config.runner
        return self.runner.plain or (r.runtime == "auto" and not online and not r.tile and not r.half)

    def runtime(self) -> dict:
        """The runtime of the output passes for the run report: ``name`` (None until the first pass), ``asked``, and ``auto``'s trial."""
        if self.adapter is not None and self.adapter.context.forward is None and self.config.runner.runtime == "auto":
            return {"name": "torch", "asked": "auto", "note": "adaptation's own forward passes make the output frames"}
        return self.runner.report()

    def model_facts(self) -> dict:
        """What the model declares about itself (its ``ModelInfo``) and how this run used it (``half``, ``tile``)."""
        info = self.model.info  # a plugin's info may be any object with attributes
        facts = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(vars(info))
        facts.update(half=self.config.runner.half, tile=self.config.runner.tile, tile_pad=self.config.runner.tile_pad if self.config.runner.tile else 0)
        return facts

    def report(self) -> dict | None:
        """The adaptation report so far (totals and per-frame records), None without adaptation."""
        return self.adapter.report.to_dict() if self.adapter is not None else None

    @property
    def estimates_kernels(self) -> bool:
        """True when the stage estimates each scene's blur (``--degradation estimate``)."""
        return self.kernels is not None

    def estimate_scene(self, scene: int, window: torch.Tensor) -> None:
        """Estimate scene ``scene``'s blur now from ``window`` (T, C, H, W), the window of its first frame.

        What the stage's first window of a scene would do on its own; a driver that serves frames out
        of order (VapourSynth) calls it while it walks the clip, so that every later request of the
        scene finds the same estimate whichever frame comes first. A no-op without estimation.
        """
        if self.kernels is not None:
            with self._lock:
                self.kernels.estimate_for_scene(scene, window)

    def reset(self) -> None:
        """Start a new clip: scene kernels, carried weights and the report start afresh; the model stays loaded."""
        with self._lock:
            self.random_access(None, None)  # the last clip's frames are not this one's
            if self.adapter is not None:
                self.adapter.reset()
            if self.kernels is not None:
                self.kernels.forget_scenes()

    def process(self, windows: torch.Tensor, indices: list[int], scenes: list[int]) -> torch.Tensor:
        """Upscale the centre frames of ``windows`` (B, T, C, H, W) -> (B, C, oH, oW) float32 in [0, 1].

        ``indices`` are the centre frames' numbers in the clip and ``scenes`` their scene ids
        (windows never mix scenes); adaptation uses both. The output is on the stage's device.
        """
        if windows.ndim != 5 or len(indices) != len(windows) or len(scenes) != len(windows):
            raise ValueError(f"process expects (B, T, C, H, W) windows with one index and scene each, got {tuple(windows.shape)}")
        with self._lock:
            if self.adapter is None:
                return self.runner(windows)
            return self.adapter.process(windows, list(indices), list(scenes))


def _kernel_estimator(config: StageConfig):
    """The per-scene kernel estimator behind ``--degradation estimate`` (``kernel_method``), else None."""
    adapt = config.adapt
    if adapt.method == "none" or adapt.degradation_kind != "estimate":
        return None
    from vsr_pipeline.kernels.estimate import KernelEstimator, method_config

    method = method_config(adapt.kernel_method)
    if config.scale not in (2, 4):
        raise ConfigError(f"--degradation estimate works at scale 2 or 4, got {config.scale:g}; give an explicit degradation.")
    return KernelEstimator(int(config.scale), method)
