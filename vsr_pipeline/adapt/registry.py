"""The registry of test-time adaptation methods: one entry per method, one module each.

The CLI's ``--adapt`` choices, the option checks of :class:`~vsr_pipeline.adapt.config.AdaptConfig`
and the documentation table are all derived from :data:`METHODS`. Adding an objective is
one new module with a ``Method`` class (see :mod:`vsr_pipeline.adapt.base`) and one entry
here. This module imports nothing heavy: the CLI reads it to build ``--help``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

# AdaptConfig fields every method other than "none" uses
COMMON_OPTIONS = ("degradation", "kernel_method", "optimizer", "lr", "momentum", "backtrack", "lr_search", "guard")


@dataclass(frozen=True)
class MethodSpec:
    """A registered adaptation method."""

    name: str  # the --adapt value
    module: str | None  # module holding the method's ``Method`` class; None: no adaptation
    summary: str  # one line for --help and the docs table
    options: tuple[str, ...] = ()  # AdaptConfig fields this method uses beyond COMMON_OPTIONS
    needs_dropout: bool = False  # needs a model that can host MC-dropout
    # The weights are carried from frame to frame within a scene: a frame's output depends on the frames before it,
    # so a driver that asks for frames out of order gets the earlier ones replayed (the Method has replay_range and
    # release), and outputs come from a separate inference pass after the steps (a fast runtime pays off).
    sequential: bool = False

    def uses(self, option: str) -> bool:
        """True when the method reads the AdaptConfig field ``option``."""
        return option in self.options or (self.module is not None and option in COMMON_OPTIONS)

    def check_sequential(self, method) -> None:
        """Raise TypeError when ``method`` (an instance of this spec's Method) lacks what :attr:`sequential` promises."""
        missing = [name for name in ("replay_range", "release") if not callable(getattr(method, name, None))]
        if self.sequential and missing:
            raise TypeError(f"adaptation method {self.name!r} is registered as sequential but has no {', '.join(missing)}")

    def load(self):
        """The method's ``Method`` class (imports its module)."""
        if self.module is None:
            raise ValueError(f"adaptation method {self.name!r} has no implementation to load")
        return importlib.import_module(self.module).Method


_FINETUNE = ("patience", "max_steps")
_DOG = ("dog_levels", "dog_sigma", "dog_weight")

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("none", None, "the trained network as it is (no adaptation)"),
        MethodSpec(
            "consistency", "vsr_pipeline.adapt.consistency",
            "Lucas et al. Algorithm 1 per frame: fine-tune a copy on ||A' f(y) - y||², early stopping",
            _FINETUNE + ("objective", "internal_weight") + _DOG,
        ),
        MethodSpec(
            "masked", "vsr_pipeline.adapt.masked",
            "GAN-artifact mask from MC-dropout variance; fine-tune on the masked loss, blend (Eq. 4)",
            _FINETUNE + ("mc_passes", "mc_dropout", "median", "mask_loss", "save_masks", "seed"),
            needs_dropout=True,
        ),
        MethodSpec(
            "online", "vsr_pipeline.adapt.online",
            "weights carried from frame to frame within a scene, a few steps on crops per frame (Goyal)",
            ("objective", "internal_weight", "steps_per_frame", "warmup", "budget", "crop", "crops", "reset_every", "snapshot_every", "seed")
            + _DOG,
            sequential=True,
        ),
        MethodSpec(
            "internal", "vsr_pipeline.adapt.internal",
            "Algorithm 1 on ZSSR-style internal pairs (LR -> LR/s) with the DoG pyramid loss",
            _FINETUNE + _DOG,
        ),
    )
}

NAMES = tuple(METHODS)  # the --adapt choices, "none" first


def get(name: str) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``; KeyError if unknown."""
    return METHODS[name]
