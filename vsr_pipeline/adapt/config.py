"""Configuration of test-time adaptation: one frozen dataclass the CLI maps its options onto.

This module imports nothing heavy (the CLI reads its defaults to build ``--help``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from vsr_pipeline.adapt import registry
from vsr_pipeline.errors import ConfigError

METHODS = registry.NAMES
OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 3e-4, "sgd": 0.005}  # chosen on bigbuckbunny (Adam) and by Lucas et al. (SGD)
# command-line flags whose name is not the field's
FLAGS = {"method": "--adapt", "optimizer": "--adapt-optimizer", "lr": "--adapt-lr", "mc_dropout": "--mc-dropout", "budget": "--adapt-budget", "warmup": "--adapt-warmup"}
OBJECTIVES = ("consistency", "internal", "both")
KERNEL_METHODS = ("learned", "spectral", "kernelgan")  # estimators behind --degradation estimate (docs/kernel-estimation.md)


@dataclass(frozen=True)
class AdaptConfig:
    """How a network is adapted to a clip at test time (Lucas et al.; Goyal)."""

    method: str = "none"  # none | consistency | masked | online | internal (see adapt.registry)
    degradation: str = "bicubic"  # A' as a spec string (see vsr_pipeline.degrade.operator); "estimate" needs a per-scene kernel
    kernel_method: str = "learned"  # how "estimate" finds each scene's blur: learned (blur beyond bicubic) | spectral | kernelgan
    optimizer: str = "adam"  # adam | sgd (Lucas et al.: plain SGD, lr 0.005); see docs/adaptation.md for the choice
    lr: float | None = None  # learning rate on the mean-squared loss; None: DEFAULT_LR of the optimizer
    momentum: float = 0.0  # SGD momentum; 0 = the paper's plain SGD
    patience: int = 3  # early stopping: stop after this many steps without a new best loss (Algorithm 1; the paper: 2, with SGD)
    max_steps: int = 100  # hard cap on steps per frame for consistency / masked / internal
    backtrack: float = 0.0  # 0 = Algorithm 1 as published; in (0, 1): undo a step that brings no new minimum, retry with lr × this
    lr_search: bool = True  # when lr fails the guard on held-out crops, walk the ladder lr × (10 … 0.01) from lr and keep the best (adapt.probe.walk)
    guard: float = 0.02  # keep the trained weights unless a few steps lower the held-out crops' loss by this fraction; 0 = off
    objective: str = "consistency"  # loss of online and per-frame steps: consistency | internal | both
    internal_weight: float = 1.0  # weight of the internal (DoG) loss when objective = both
    dog_levels: int = 6  # DoG pyramid levels (Goyal)
    dog_sigma: float = 3.0  # Gaussian sigma of the pyramid, LR pixels (Goyal)
    dog_weight: float = 10.0  # weight W of the band-pass terms (Goyal)
    mc_passes: int = 50  # stochastic passes for the variance map (Lucas et al.: 50)
    mc_dropout: float = 0.0005  # dropout rate between residual blocks (Lucas et al.)
    median: int = 3  # median filter size that cleans the mask; 1 = none
    mask_loss: str = "residual"  # masked: residual = ||(A'f − y) ⊙ M_d||², eq3 = ||A'(f ⊙ M) − y ⊙ M_d||² (Eq. 3 as written)
    save_masks: str | None = None  # folder for variance maps and masks (PNG), None = do not save
    steps_per_frame: int = 2  # online: steps per frame, weights and optimiser state carried to the next frame
    warmup: int = 4  # online: extra steps on the first frame of each chain (scene), on top of steps_per_frame; not capped by budget
    budget: float = 0.5  # online: steps may cost at most this fraction of the frame's inference (smaller crops, then fewer steps, on small frames); 0 = no cap
    crop: int = 48  # online: LR crop size of a step; 0 = whole frames
    crops: int = 1  # online: crops per step (a mini-batch)
    reset_every: int = 0  # online: also restart from the trained weights every K frames (0 = only at scene cuts)
    snapshot_every: int = 16  # online: keep adapted weights every K frames for random access
    seed: int = 0  # seeds the online crops (per frame index) and the MC-dropout passes

    @property
    def degradation_kind(self) -> str:
        """The kind of ``degradation`` as parsed when this config was made: bicubic, gauss, aniso, disk, kernel or estimate."""
        return self._degradation_kind

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default when it was not given."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def __post_init__(self) -> None:
        self._check_values()
        self._check_applicable()

    def _check_applicable(self) -> None:
        """Refuse an option the chosen method would ignore (one sentence naming it)."""
        spec = registry.get(self.method)
        for f in fields(self):
            if f.name == "method" or getattr(self, f.name) == f.default:
                continue
            if not spec.uses(f.name):
                users = [m.name for m in registry.METHODS.values() if m.uses(f.name)]
                raise ConfigError(
                    f"{flag(f.name)} applies only with --adapt {' or '.join(users)}, "
                    f"so it would be ignored with --adapt {self.method}; drop it or choose one of those methods."
                )
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError("--momentum applies only with --adapt-optimizer sgd (Adam has its own); drop it or use sgd.")
        if self.kernel_method != AdaptConfig.kernel_method and self.degradation_kind != "estimate":
            raise ConfigError(
                "--kernel-method applies only with --degradation estimate, "
                f"so it would be ignored with --degradation {self.degradation}; drop it."
            )

    def _check_values(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag(f.name)} must be a finite number, got {value}.")
        kind = "bicubic"
        if self.degradation != default("degradation"):
            from vsr_pipeline.degrade.operator import parse_degradation  # imports torch: only for a given spec

            kind = parse_degradation(self.degradation, 4.0).kind  # raises ConfigError naming what is wrong
        object.__setattr__(self, "_degradation_kind", kind)  # parsed once, here; not a field (equality, hash)
        if self.method not in METHODS:
            raise ConfigError(f"Unknown adaptation method '{self.method}'; use one of {', '.join(METHODS)}.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Unknown adaptation objective '{self.objective}'; use one of {', '.join(OBJECTIVES)}.")
        if self.kernel_method not in KERNEL_METHODS:
            raise ConfigError(f"Unknown kernel estimation method '{self.kernel_method}'; use one of {', '.join(KERNEL_METHODS)}.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"Unknown optimizer '{self.optimizer}'; use sgd or adam.")
        if self.lr is not None and not (self.lr > 0):
            raise ConfigError(f"The adaptation learning rate must be positive, got {self.lr}.")
        if self.patience < 1 or self.max_steps < 0 or self.steps_per_frame < 0:
            raise ConfigError("--patience must be ≥ 1 and --max-steps / --steps-per-frame ≥ 0.")
        if not (0.0 <= self.guard < 1.0):
            raise ConfigError(f"--guard must be in [0, 1) (a fraction of the held-out loss; 0 = off), got {self.guard}.")
        if self.warmup < 0:
            raise ConfigError(f"--adapt-warmup must be ≥ 0 (extra steps on a scene's first frame), got {self.warmup}.")
        if not (self.budget >= 0.0):
            raise ConfigError(f"--adapt-budget must be ≥ 0 (a fraction of the inference time; 0 = no cap), got {self.budget}.")
        if not (0.0 <= self.backtrack < 1.0):
            raise ConfigError(f"--backtrack must be in [0, 1) (0 = off), got {self.backtrack}.")
        if self.mc_passes < 2:
            raise ConfigError(f"--mc-passes must be at least 2 to measure a variance, got {self.mc_passes}.")
        if not (0.0 < self.mc_dropout < 1.0):
            raise ConfigError(f"The MC-dropout rate must be in (0, 1), got {self.mc_dropout}.")
        if self.mask_loss not in ("residual", "eq3"):
            raise ConfigError(f"Unknown masked loss '{self.mask_loss}'; use residual or eq3.")
        if self.median < 1 or self.median % 2 == 0:
            raise ConfigError(f"The mask median filter size must be odd and ≥ 1, got {self.median}.")
        if self.crop < 0 or self.crops < 1 or self.reset_every < 0 or self.snapshot_every < 1:
            raise ConfigError("--crop must be ≥ 0, crops ≥ 1, reset-every ≥ 0 and snapshot-every ≥ 1.")
        if self.dog_levels < 1 or not (self.dog_sigma > 0):
            raise ConfigError("The DoG pyramid needs ≥ 1 level and a positive sigma.")


def flag(name: str) -> str:
    """The command-line flag of the AdaptConfig field ``name`` (e.g. ``lr`` -> ``--adapt-lr``)."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def default(name: str):
    """The default of the AdaptConfig field ``name`` (the CLI's default: one source of truth)."""
    return next(f.default for f in fields(AdaptConfig) if f.name == name)
