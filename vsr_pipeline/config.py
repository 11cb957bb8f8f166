"""The configuration of a run: frozen dataclasses the CLI, the API and every driver map onto.

This module imports nothing heavy: the command line reads its defaults to build ``--help``
(one source of truth for every default).

- :class:`RunnerConfig`: where and how the network runs (device, fp16, tiles, batching, runtime).
- :class:`StageConfig`: what the enhancement stage is built from (model, scale, runner,
  adaptation); see :class:`vsr_pipeline.enhancer.Enhancer`.
- :class:`EncodeOptions`: how a file driver encodes its output (defined in :mod:`vsr_pipeline.io.options`).
- :class:`EnhanceConfig`: everything ``vsrpipe enhance`` can be told.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.io.options import EncodeOptions  # noqa: F401  (re-exported: lives below adapt/)
from vsr_pipeline.limits import output_size

DEFAULT_MODEL = "vsrnet-x4"  # the shipped network; bicubic is the baseline
EDGES = ("replicate", "reflect")
ON_ERROR = ("stop", "skip")
RUNTIMES = ("torch", "onnxruntime", "openvino", "auto")  # --runtime choices (vsr_pipeline.runtimes.NAMES)


MIN_TILE = 8  # the smallest --tile accepted whatever the pad


def min_tile(tile_pad: int) -> int:
    """The smallest LR tile accepted with ``tile_pad`` px of context: ``max(MIN_TILE, tile_pad)``.

    A tile is run with ``tile_pad`` px of context on each side (the pad must cover the
    model's receptive radius), so the work per output pixel grows as ((tile + 2·pad) / tile)²:
    at the minimum (tile = pad) it is 9×, at ``--tile 1`` with the default pad of 16 it would be 1089×.
    """
    return max(MIN_TILE, tile_pad)


def _finite(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}.")


@dataclass(frozen=True)
class RunnerConfig:
    """Where and how the model runs."""

    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    half: bool = False  # fp16 inference (CUDA only); adaptation keeps fp32 weights
    tile: int = 0  # LR tile size in pixels; 0 = whole frames
    tile_pad: int = 16  # LR context pixels around each tile (≥ the model's receptive radius)
    batch: int = 1  # windows per forward pass
    runtime: str = "auto"  # "torch", "onnxruntime", "openvino", or "auto": the fastest installed one with the same output

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}.")
        if self.tile < 0 or self.tile_pad < 0:
            raise ConfigError("--tile and --tile-pad must be ≥ 0.")
        if self.tile and self.tile < min_tile(self.tile_pad):
            raise ConfigError(
                f"--tile {self.tile} is too small: with --tile-pad {self.tile_pad} a tile must be at least "
                f"{min_tile(self.tile_pad)} px (each tile carries {self.tile_pad} px of context on every side, so "
                f"smaller tiles multiply the work many times over); use --tile {min_tile(self.tile_pad)} or more, or 0 for whole frames."
            )
        if self.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {self.batch}.")
        if self.tile_pad and not self.tile and self.tile_pad != field_default(RunnerConfig, "tile_pad"):
            raise ConfigError("--tile-pad applies only with --tile; give a tile size or drop it.")


@dataclass(frozen=True)
class StageConfig:
    """What the enhancement stage is built from (once; drivers then feed it windows)."""

    model: str = DEFAULT_MODEL  # registered model name or a weights file path
    scale: float = 4  # output scale (may differ from the model's native scale)
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # device, tiling, batching
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # test-time adaptation (method "none": off)

    def __post_init__(self) -> None:
        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))  # model=Path("m.pth") from Python
        _finite("--scale", self.scale)
        if not self.scale > 0:
            raise ConfigError(f"--scale must be positive, got {self.scale:g}.")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of this stage's output frame for an input frame of ``height`` × ``width``."""
        return output_size(height, width, self.scale)


@dataclass(frozen=True)
class EnhanceConfig:
    """Everything `vsrpipe enhance` can be told; the CLI maps its options onto this."""

    scale: float = 4  # output scale (may differ from the model's native scale)
    model: str = DEFAULT_MODEL  # registered model name or a weights file path
    start: float | None = None  # seconds: process a section starting here
    duration: float | None = None  # seconds: length of the section
    on_error: str = "stop"  # damaged input: "stop" (fail) or "skip" (drop damaged frames, warn)
    edge: str = "replicate"  # window edges: "replicate" or "reflect"
    overwrite: bool = False  # replace an existing output file
    scene_threshold: float = 27.0  # content-detector score that marks a scene cut; 0 = off
    runner: RunnerConfig = field(default_factory=RunnerConfig)  # device, tiling, batching
    adapt: AdaptConfig = field(default_factory=AdaptConfig)  # test-time adaptation (method "none": off)
    report: Path | None = None  # write the run report (adaptation records included) as JSON here
    encode: EncodeOptions = field(default_factory=EncodeOptions)  # writer backend and codec
    fps: float | None = None  # frame rate of an image-sequence input (--fps); needed to make a video of one

    def __post_init__(self) -> None:
        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))
        for name, value in (("--scale", self.scale), ("--start", self.start), ("--duration", self.duration),
                            ("--scene-threshold", self.scene_threshold), ("--fps", self.fps)):
            _finite(name, value)
        if not self.scale > 0:
            raise ConfigError(f"--scale must be positive, got {self.scale:g}.")
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"--on-error must be 'stop' or 'skip', got {self.on_error!r}.")
        if self.edge not in EDGES:
            raise ConfigError(f"--edge must be 'replicate' or 'reflect', got {self.edge!r}.")
        if self.start is not None and self.start < 0 or self.duration is not None and self.duration <= 0:
            raise ConfigError("--start must be ≥ 0 and --duration > 0.")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps must be positive, got {self.fps:g}.")
        if self.scene_threshold < 0:
            raise ConfigError(f"--scene-threshold must be ≥ 0 (0 turns detection off), got {self.scene_threshold:g}.")

    @property
    def stage(self) -> StageConfig:
        """The part of this configuration the enhancement stage is built from."""
        return StageConfig(model=self.model, scale=self.scale, runner=self.runner, adapt=self.adapt)


def field_default(cls: type, name: str):
    """The default of field ``name`` of the dataclass ``cls`` (used for the CLI's defaults)."""
    for f in fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)


def replace_flat(base, options: dict):
    """``base`` (a config dataclass) with the flat ``options`` that name its fields applied."""
    mine = {f.name for f in fields(base)}
    return type(base)(**{**{f.name: getattr(base, f.name) for f in fields(base)}, **{k: v for k, v in options.items() if k in mine}})
