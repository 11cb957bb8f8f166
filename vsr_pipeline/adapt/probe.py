"""Step size and guard: a learning rate chosen on held-out crops, or the trained weights kept.

One fixed learning rate does not move every network: the right Adam step for a 600 k
parameter MSE network is far too large or too small for a 16 M parameter GAN, and footage
the network already fits gains nothing from adaptation and can only lose. Before a scene
(online) or a frame (per-frame methods) is adapted, :func:`probe` splits the window into
two halves and takes a few seeded crops in each. A candidate rate is tried by making
:data:`PROBE_STEPS` optimiser steps from the trained weights on the first half's crops and
measuring the objective on the second half's crops, which the steps never saw.

The configured rate (``--adapt-lr``) is tried first. It is kept when it lowers the held-out
loss by at least the guard fraction (``--guard``, default 2 %). Otherwise, with
``--lr-search`` (the default), the search walks the ladder rate × :data:`LR_FACTORS`
(10 … 0.01) from the configured rate, one rung at a time while each rung lowers the
held-out loss further: up first when the configured rate helped too little, down first
when it made the loss worse, and the other way when the first rung did not help. The
best rate found is kept if it passes the guard; when none does, the trained weights are
used (no adaptation, reported as guarded frames). ``--guard 0`` never blocks: the best rate
is used whatever it gives. Where the held-out loss has one minimum along the ladder (it
falls, then rises, as the rate grows) the walk finds the same rate as trying every rung,
in fewer tries (on bigbuckbunny windows where the configured rate failed: 3–4 instead of 7).

**Nothing to fix.** On footage the network already matches, a few steps at a small rate
can still lower the held-out consistency loss by several per cent while the output gets
worse (bigbuckbunny, bicubic ×4, vsrnet-x4: +8 % held-out at 3e-5, −0.14 dB over 60
frames of online adaptation): the residual is then made of the input's 8-bit rounding,
which the true image leaves too (a mean square of :data:`QUANT_NOISE` = (1/255)²/12). When
the probe's objective is the plain consistency loss, callers pass ``floor`` =
:data:`NOISE_FLOOR` (twice that): a window whose held-out loss is already below it is left
to the trained weights without trying any rate. Measured on bigbuckbunny windows, matched
footage sat at 0.6–1.8e-6 and E2's blur (σ = 2) at 5.6–12e-5 (σ = 1: 1.3–3.1e-5).

The probe depends only on the trained weights and the window it is given (its crops are
seeded), so its answer is the same in any request order. Online adaptation probes the
first window of each chain (a scene, or ``reset_every`` frames). Per-frame methods
(:class:`StepSizes`) probe the first window of each scene when frames arrive as a stream
(the command line, batch), and every frame when a driver asks for frames in any order
(VapourSynth), so that a frame's output never depends on which frame was asked for first.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from vsr_pipeline.adapt.base import Context, Objective, make_optimizer, trainable_copy
from vsr_pipeline.adapt.config import AdaptConfig

log = logging.getLogger(__name__)

LR_FACTORS = (10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01)  # candidates relative to the configured rate
PROBE_STEPS = 4  # optimiser steps per candidate
PROBE_CROPS = 4  # crops per half
PROBE_CROP = 48  # LR crop size (smaller when a half is smaller)
MAX_SCENES = 256  # per-scene answers kept by StepSizes
QUANT_NOISE = (1 / 255) ** 2 / 12  # mean squared 8-bit rounding error: the consistency residual of the true image
NOISE_FLOOR = 2 * QUANT_NOISE  # below this held-out consistency loss there is nothing for adaptation to fix

ObjectiveFor = Callable[[torch.Tensor], Objective]  # crops (N, T, C, h, w) -> objective


@dataclass
class ProbeResult:
    """What the probe found for one window."""

    lr: float | None  # the rate to adapt with; None: keep the trained weights (guard)
    heldout_before: float  # held-out loss of the trained weights
    heldout: dict[float, float] = field(default_factory=dict)  # candidate rate -> held-out loss after its steps
    floored: bool = False  # the held-out loss was already under the noise floor: no rate tried
    state: tuple[dict, dict] | None = None  # (weights, optimiser state) after the chosen rate's steps, when kept

    @property
    def gain(self) -> float:
        """Relative drop of the held-out loss with the best candidate (0 when none helped)."""
        finite = [v for v in self.heldout.values() if math.isfinite(v)]
        if not finite or not self.heldout_before > 0:
            return 0.0
        return max(0.0, 1.0 - min(finite) / self.heldout_before)


def floor_for(config: AdaptConfig) -> float:
    """The probe's floor when its loss is the configured objective: NOISE_FLOOR for plain consistency, else 0."""
    return NOISE_FLOOR if config.objective == "consistency" else 0.0


def enabled(config: AdaptConfig) -> bool:
    """True when the configuration asks for a probe (``lr_search`` or a ``guard``)."""
    return config.lr_search or config.guard > 0


def candidates(config: AdaptConfig) -> list[float]:
    """The rates the probe tries: the configured one, times :data:`LR_FACTORS` with ``lr_search``."""
    base = config.learning_rate
    return [float(f"{base * f:.3g}") for f in LR_FACTORS] if config.lr_search else [base]


def split_crops(window: torch.Tensor, size: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded crops from two disjoint halves of ``window`` (T, C, H, W) -> (train, held), each (n, T, C, s, s').

    The window is cut across its longer side; crops are at most ``size`` and fit in a half.
    A half takes at most as many crops as it holds crop areas (n ≤ ``count``): on a small
    frame more crops would only repeat the same pixels at the probe's cost.
    """
    h, w = window.shape[-2:]
    if w >= h:
        halves = (window[..., : w // 2], window[..., w // 2 :])
    else:
        halves = (window[..., : h // 2, :], window[..., h // 2 :, :])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for half in halves:
        hh, hw = half.shape[-2:]
        ch, cw = min(size, hh), min(size, hw)
        n = max(1, min(count, (hh * hw) // (ch * cw)))
        tops = torch.randint(0, hh - ch + 1, (n,), generator=gen).tolist()
        lefts = torch.randint(0, hw - cw + 1, (n,), generator=gen).tolist()
        out.append(torch.stack([half[..., a : a + ch, b : b + cw] for a, b in zip(tops, lefts)]))
    return out[0], out[1]


def probe_seed(seed: int, index: int) -> int:
    """The crops' seed for the window of frame ``index``: fixed, independent of request order."""
    return (seed * 1_000_003 + index * 7919 + 424242) % (2**63 - 1)


def _loss(objective: Objective, net) -> float:
    with torch.no_grad():
        return float(objective(net)[1])


def _try(
    model: torch.nn.Module, lr: float, config: AdaptConfig, train: Objective, held: Objective, keep: dict | None = None
) -> float:
    """Held-out loss after PROBE_STEPS steps at ``lr`` from the trained weights (inf if a loss blew up).

    ``keep[lr]`` receives (weights, optimiser state) after the steps, when ``keep`` is given.
    """
    net = trainable_copy(model)
    opt = make_optimizer(net, config.optimizer, lr, config.momentum)
    for _ in range(PROBE_STEPS):
        with torch.enable_grad():
            _, loss = train(net)
        if not torch.isfinite(loss):
            return math.inf
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    value = _loss(held, net)
    if keep is not None and math.isfinite(value):
        keep[lr] = (net.state_dict(), opt.state_dict())
    return value if math.isfinite(value) else math.inf


def probe(
    model: torch.nn.Module, window: torch.Tensor, objective_for: ObjectiveFor, config: AdaptConfig, seed: int = 0,
    floor: float = 0.0, keep_state: bool = False,
) -> ProbeResult:
    """Choose the learning rate for ``window`` (T, C, H, W), or None to keep the trained weights (see module doc).

    With a guard, a held-out loss already below ``floor`` keeps the trained weights at once.
    The configured rate is tried first; when it lowers the held-out loss by the guard
    fraction (or at all, without a guard) it is kept and nothing else is tried. Otherwise,
    with ``lr_search``, :func:`walk` tries the ladder's rungs around it and the best rate
    found is kept if it passes.
    ``keep_state``: also return the chosen candidate's weights and optimiser state after its
    steps (online adaptation starts its chain there).
    """
    train, held = split_crops(window, PROBE_CROP, PROBE_CROPS, seed)
    train_objective, held_objective = objective_for(train), objective_for(held)
    result = ProbeResult(lr=None, heldout_before=_loss(held_objective, model))
    if config.guard and result.heldout_before < floor:
        result.floored = True
        log.debug("probe: held-out loss %.3g is under the noise floor %.3g: keep the trained weights", result.heldout_before, floor)
        return result
    need = result.heldout_before * (1.0 - config.guard)

    def passes(value: float) -> bool:
        return value < need if config.guard else math.isfinite(value)

    first = config.learning_rate
    states: dict | None = {} if keep_state else None

    def attempt(lr: float) -> float:
        result.heldout[lr] = _try(model, lr, config, train_objective, held_objective, states)
        if states:  # keep only the best candidate's state
            best = min(result.heldout, key=lambda k: result.heldout[k])
            for k in [k for k in states if k != best]:
                del states[k]
        return result.heldout[lr]

    attempt(first)
    if config.lr_search and (not passes(result.heldout[first]) or not result.heldout[first] < result.heldout_before):
        walk(candidates(config), first, attempt, result.heldout[first], result.heldout_before)
    best_lr = min(result.heldout, key=lambda k: result.heldout[k])
    if passes(result.heldout[best_lr]):
        result.lr = best_lr
        if states is not None:
            result.state = states.get(best_lr)
    log.debug(
        "probe: held-out loss %.3g before, best %.3g at lr %.3g -> %s",
        result.heldout_before, result.heldout[best_lr], best_lr,
        "keep the trained weights" if result.lr is None else f"lr {result.lr:.3g}",
    )
    return result


def walk(ladder: list[float], start: float, attempt: Callable[[float], float], start_loss: float, before: float) -> None:
    """Try rungs of ``ladder`` (rates, largest first) outwards from ``start`` (tried: ``start_loss``); see module doc.

    ``attempt(lr)`` tries one rate and returns its held-out loss. The walk goes one way
    while each rung beats the best so far, and the other way only when the first rung did
    not. It goes up (larger rates) first when ``start`` lowered the held-out loss
    (``before``: the trained weights') too little, and down first when it raised it: a
    rate that overshoots is too large, however much larger rates overshoot further (on
    bigbuckbunny one larger rung overshot less than it and a walk upwards stopped there).
    A blown-up loss (inf) never beats anything.
    """
    at = min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / start)))
    best = start_loss
    for step in ((-1, 1) if start_loss < before else (1, -1)):  # -1: towards larger rates (the ladder is largest first)
        i, moved = at + step, False
        while 0 <= i < len(ladder):
            value = attempt(ladder[i])
            if not value < best:
                break
            best, moved, i = value, True, i + step
        if moved:
            return


class StepSizes:
    """The learning rate of each frame for a per-frame method (see the module doc for when it probes)."""

    def __init__(self, context: Context) -> None:
        self.ctx = context
        self.by_scene: dict[int, float | None] = {}

    def reset(self) -> None:
        """A new clip: forget the scenes' answers."""
        self.by_scene.clear()

    def __call__(
        self, window: torch.Tensor, index: int, scene: int, objective_for: ObjectiveFor, floor: float = 0.0
    ) -> float | None:
        """The rate for frame ``index`` (window (1, T, C, H, W)); None: keep the trained weights (``floor``: see :func:`probe`)."""
        cfg = self.ctx.config
        if not enabled(cfg):
            return cfg.learning_rate
        streaming = self.ctx.fetch is None and self.ctx.scene_start is None
        if streaming and scene in self.by_scene:
            return self.by_scene[scene]
        lr = probe(self.ctx.model, window[0], objective_for, cfg, probe_seed(cfg.seed, index), floor).lr
        if streaming:
            if len(self.by_scene) >= MAX_SCENES:
                self.by_scene.clear()
            self.by_scene[scene] = lr
        return lr
