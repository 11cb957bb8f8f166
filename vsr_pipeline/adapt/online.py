"""Online weight transfer (Goyal): the weights adapted on frame i-1 start frame i.

Within a scene the network and its optimiser state are carried from frame to frame; each
frame gets ``steps_per_frame`` SGD steps on a few random LR crops (cheaper than whole
frames) and is then upscaled with the updated weights. A scene cut restarts from the
trained weights — or, with the step-size probe on, from where the probe's steps at the
chain's chosen rate ended (weights and optimiser state; :func:`probe.probe` ``keep_state``).
A chain's first frame also takes ``warmup`` extra steps, once per chain (chosen on
bigbuckbunny, E2's blur: 4 steps were never worse than none and best on average over three
settings; 10 won on short scenes and lost on longer ones; see docs/adaptation.md).

**Budget.** A step on a 48² crop costs about as much as upscaling a 96×72 frame, so on
small frames two steps per frame would triple the run time. ``budget`` caps the steps'
compute per frame at that fraction of the frame's own inference, a step counting
:data:`STEP_COST` forward passes over its crops' pixels. Over the cap the crops shrink
first (measured on bigbuckbunny at 96×72, E2's blur: at the same cost, two steps on 24²
crops gained +1.06 dB, one step on 32² +0.91 dB, one step every other frame on 48² +0.72
dB), down to :data:`MIN_CROP`; below that the chain takes fewer steps, spread evenly (the
frame at chain position j takes ceil((j+1)·r) − ceil(j·r) steps at r steps per frame, so a
chain's first frame always steps). Large frames are not affected (at 320×180 two steps on
48² crops cost 0.24 of the inference).

Random access (the VapourSynth filter asks for frames in any order) is reproducible by
construction: the weights used for frame i are a pure function of the trained weights and
the frames of i's *chain*, c(i) … i, where the chain starts at the first frame of i's scene,
or at the last multiple of ``reset_every`` (K) when that is later:

    ψ_{c(i)-1} = ψ̃ (trained),   ψ_j = step(ψ_{j-1}, window_j, crops seeded by (seed, j))

so the output of frame i never depends on which frames were requested before it. In order,
the live state simply moves on by one frame. Out of order, the adapter restarts from the
nearest kept snapshot of the chain at or before i (one every ``snapshot_every`` frames of
the chain, K ≥ 1) and replays the frames between with ``fetch(index) -> (window, scene)``;
without a snapshot it walks back to the chain start. With K > 0 a replay costs at most K
frames; with K = 0 (chains as long as the scene) the first request deep inside an unseen
scene replays the scene from its start.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vsr_pipeline.adapt import probe
from vsr_pipeline.adapt.base import Context, Fetch, Forward, MethodResult, Objective, make_optimizer, trainable_copy, upscale
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.consistency import consistency_objective
from vsr_pipeline.adapt.finetune import check_degradation, combine
from vsr_pipeline.adapt.dog import DoGLoss
from vsr_pipeline.adapt.internal import internal_objective
from vsr_pipeline.degrade.operator import Degradation
from vsr_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

DegradationFor = Callable[[int, torch.Tensor], Degradation]  # (scene, window (T, C, H, W)) -> A'

MAX_SNAPSHOTS = 64  # kept weight snapshots (about 1.3 MB each for vsrnet-x4)
STEP_COST = 3.0  # a training step ≈ forward + backward ≈ three forward passes over its crops
MIN_CROP = 24  # the budget shrinks crops down to this LR size, then takes fewer steps
MAX_WARM = 4  # chains whose probe state (weights + optimiser) is kept for replays from their start


def crop_size(config: AdaptConfig, hw: tuple[int, int]) -> int:
    """LR crop side of the steps on a frame of size ``hw``: ``crop``, shrunk to fit ``budget`` (see module doc)."""
    h, w = hw
    spf = config.steps_per_frame
    if not config.budget or not spf or config.crop == 0 or (config.crop >= h and config.crop >= w):
        return config.crop
    fits = math.isqrt(int(config.budget * h * w / (STEP_COST * config.crops * spf)))
    return min(config.crop, max(MIN_CROP, fits))


def steps_per_frame(config: AdaptConfig, hw: tuple[int, int]) -> float:
    """Steps per frame on an LR frame of size ``hw``: ``steps_per_frame``, fewer when even MIN_CROP crops exceed ``budget``."""
    h, w = hw
    if not config.budget:
        return float(config.steps_per_frame)
    crop = crop_size(config, hw)
    whole = crop == 0 or (crop >= h and crop >= w)
    step_pixels = h * w if whole else config.crops * min(crop, h) * min(crop, w)
    return min(float(config.steps_per_frame), config.budget * h * w / (STEP_COST * step_pixels))


def steps_at(rate: float, position: int) -> int:
    """Steps of the frame at ``position`` in its chain at ``rate`` steps per frame (first frames first)."""
    return math.ceil((position + 1) * rate - 1e-9) - math.ceil(position * rate - 1e-9)


def crop_seed(seed: int, index: int) -> int:
    """The RNG seed of frame ``index``'s crops: a fixed mix of the two, independent of request order."""
    return (seed * 1_000_003 + index * 7919 + 12345) % (2**63 - 1)


def random_crops(window: torch.Tensor, size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random size×size crops of one window (T, C, H, W), same place in every frame -> (count, T, C, s, s).

    A frame smaller than ``size`` (or ``size == 0``) gives the whole window once.
    """
    t, c, h, w = window.shape
    if size == 0 or (size >= h and size >= w):
        return window[None]
    ch, cw = min(size, h), min(size, w)
    tops = torch.randint(0, h - ch + 1, (count,), generator=generator)
    lefts = torch.randint(0, w - cw + 1, (count,), generator=generator)
    return torch.stack([window[..., a : a + ch, b : b + cw] for a, b in zip(tops.tolist(), lefts.tolist())])


@dataclass
class OnlineFrame:
    """What the online adapter did for one frame."""

    output: torch.Tensor  # (C, oH, oW), clamped to [0, 1]
    loss_before: float  # objective on the first step's crops, before its update (nan without steps)
    loss_after: float  # objective on the last step's crops, before its update
    steps: int  # updates made for this frame
    replayed: int  # earlier frames re-adapted to serve this request out of order
    adapt_seconds: float  # time in updates (including replays)
    infer_seconds: float  # time in the output pass
    fallback: bool  # the loss diverged: output of the trained weights, chain restarted
    guarded: bool = False  # the probe's guard froze this chain: the trained weights' output
    lr: float | None = None  # the learning rate of this frame's steps (None: no steps)


class OnlineAdapter:
    """Weight transfer across the frames of a scene, reproducible under random access (see module doc).

    Args:
        model: the trained network (never modified).
        scale: output scale.
        config: an :class:`AdaptConfig` (lr, momentum, objective, steps_per_frame, budget, crop, crops,
            reset_every, snapshot_every, seed, DoG settings).
        degradation_for: (scene, window) -> A' at ``scale``; called once per scene.
        fetch: index -> (window, scene), needed only for out-of-order requests.
        forward: (net, windows (B, T, C, H, W)) -> output in [0, 1], the output pass when it is
            not a plain forward (the runner's tiles or fp16); default: a plain forward.
    """

    def __init__(
        self, model: nn.Module, scale: float, config: AdaptConfig, degradation_for: DegradationFor,
        fetch: Fetch | None = None, forward: Forward | None = None,
    ) -> None:
        self.forward = forward
        self.scene_start: Callable[[int], int] | None = None  # frame -> first frame of its scene, when the driver knows
        self._pins: dict[tuple[int, int], int] = {}  # snapshots held for planned requests (not evicted)
        self._held: dict[int, list[tuple[int, int]]] = {}  # request index -> the snapshots it holds
        self.trained = model
        self.scale = scale
        self.config = config
        self.degradation_for = degradation_for
        self.fetch = fetch
        self.net = trainable_copy(model)
        self.initial = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.opt = self._optimizer()
        self.live: tuple[int, int] | None = None  # (scene, index) the net's weights belong to
        self.snapshots: OrderedDict[tuple[int, int], tuple[dict, dict]] = OrderedDict()
        self.starts: dict[tuple[int, int], int] = {}  # (scene, index) adapted -> first frame of its chain
        self.dog = DoGLoss(config.dog_levels, config.dog_sigma, config.dog_weight)
        self._degradations: dict[int, Degradation] = {}
        self._rates: dict[tuple[int, int], float | None] = {}  # (scene, chain start) -> the probe's rate (None: frozen)
        self._warm: OrderedDict[tuple[int, int], tuple[dict, dict]] = OrderedDict()  # chain -> the probe's state

    def forget(self) -> None:
        """Drop every carried state (chains, snapshots, scene kernels): the next frame starts a new clip."""
        self._reset()
        self.live = None
        self.snapshots.clear()
        self.starts.clear()
        self._degradations.clear()
        self._rates.clear()
        self._warm.clear()
        self._pins.clear()
        self._held.clear()

    def _optimizer(self) -> torch.optim.Optimizer:
        return make_optimizer(self.net, self.config.optimizer, self.config.learning_rate, self.config.momentum)

    def _reset(self) -> None:
        self.net.load_state_dict(self.initial)
        self.opt = self._optimizer()

    def _set_rate(self, rate: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = rate

    def _restore(self, key: tuple[int, int]) -> None:
        weights, optim = self.snapshots[key]
        self.net.load_state_dict(weights)
        self.opt = self._optimizer()
        self.opt.load_state_dict(_clone_state(optim))  # load_state_dict keeps the tensors: Adam would update the snapshot in place
        self.snapshots.move_to_end(key)

    def _snapshot(self, key: tuple[int, int]) -> None:
        weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        optim = _clone_state(self.opt.state_dict())
        self.snapshots[key] = (weights, optim)
        while len(self.snapshots) > MAX_SNAPSHOTS:
            oldest = next((k for k in self.snapshots if not self._pins.get(k)), None)
            if oldest is None:
                break  # every kept snapshot is held by a planned request
            del self.snapshots[oldest]

    def degradation(self, scene: int, window: torch.Tensor) -> Degradation:
        """A' of ``scene`` (asked for once, then cached)."""
        if scene not in self._degradations:
            self._degradations[scene] = self.degradation_for(scene, window)
        return self._degradations[scene]

    def _objective(self, batch: torch.Tensor, deg: Degradation) -> Objective:
        """Loss on crops (N, T, C, h, w); A' must map the crops' output size back to the crops."""
        out_hw = check_degradation(deg, tuple(batch.shape[-2:]), self.scale)
        kind = self.config.objective
        consistency = consistency_objective(batch, deg, out_hw)
        if kind == "consistency":
            return consistency
        internal = internal_objective(batch, deg, out_hw, self.dog, with_output=False)
        if kind == "internal":
            return lambda net: (None, internal(net)[1])
        return combine((consistency, 1.0), (internal, self.config.internal_weight))

    def _rate(
        self, window: torch.Tensor, index: int, scene: int, start: int, deg: Degradation
    ) -> tuple[float | None, tuple[dict, dict] | None]:
        """The chain's learning rate (None: frozen) and, at its first frame, the probe's state to start from.

        The rate is the configured one, or the probe's on the chain's first window. The probe's
        state (weights and optimiser after its steps at that rate) is kept for MAX_WARM chains
        and recomputed, identically, when a chain evicted from it is walked from its start again.
        """
        cfg = self.config
        if not probe.enabled(cfg):
            return cfg.learning_rate, None
        key = (scene, start)
        warm = self._warm.get(key)
        if key not in self._rates or (index == start and self._rates[key] is not None and warm is None):
            if index != start:  # a chain is always walked from its start; a missing answer is a bug
                raise RuntimeError(f"online adaptation: no step size for the chain starting at frame {start}")
            found = probe.probe(
                self.trained, window, lambda crops: self._objective(crops, deg), cfg, probe.probe_seed(cfg.seed, start),
                probe.floor_for(cfg), keep_state=True,
            )
            self._rates[key], warm = found.lr, found.state
            if warm is not None:
                self._warm[key] = warm
                while len(self._warm) > MAX_WARM:
                    self._warm.popitem(last=False)
        return self._rates[key], warm if index == start else None

    def _adapt(self, window: torch.Tensor, index: int, scene: int, start: int) -> tuple[list[float], bool]:
        """Run this frame's steps on the live net; returns (losses, diverged). Restarts the chain on divergence."""
        cfg = self.config
        deg = self.degradation(scene, window)
        rate, warm = self._rate(window, index, scene, start, deg)
        if rate is None:
            return [], False  # the guard froze this chain: the trained weights serve it
        if index == start:
            if warm is not None:  # the chain starts where the probe's steps at its rate ended
                self.net.load_state_dict(warm[0])
                self.opt.load_state_dict(_clone_state(warm[1]))
            self._set_rate(rate)
        gen = torch.Generator().manual_seed(crop_seed(cfg.seed, index))
        losses: list[float] = []
        hw = tuple(window.shape[-2:])
        size = crop_size(cfg, hw)
        count = steps_at(steps_per_frame(cfg, hw), index - start) + (cfg.warmup if index == start else 0)
        for _ in range(count):
            batch = random_crops(window, size, cfg.crops, gen).to(window.device)  # (N, T, C, h, w)
            with torch.enable_grad():
                _, loss = self._objective(batch, deg)(self.net)
            value = float(loss.detach())
            losses.append(value)
            if not torch.isfinite(loss):
                log.warning("online adaptation diverged at frame %d (loss %s); restarting from the trained weights", index, value)
                self._reset()
                self._set_rate(rate)
                return losses, True
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return losses, False

    def _chain_start(self, index: int, scene: int) -> int:
        """First frame of ``index``'s chain: walk back with ``fetch`` until the scene changes, a reset point or a known frame.

        A driver that knows where scenes start (``scene_start``) saves the walk.
        """
        k = self.config.reset_every
        floor = (index // k) * k if k else 0
        if self.scene_start is not None:
            return max(floor, self.scene_start(index))
        start = index
        while start > floor:
            known = self.starts.get((scene, start - 1))
            if known is not None:
                return known
            _, prev_scene = self.fetch(start - 1)  # type: ignore[misc]
            if prev_scene != scene:
                break
            start -= 1
        return start

    def _base(self, scene: int, start: int, index: int) -> int | None:
        """Latest state of the chain (scene, start) before ``index``: the live one or a snapshot; None = trained weights."""
        best = None
        for s, j in list(self.snapshots) + ([self.live] if self.live else []):
            if s == scene and start <= j < index and self.starts.get((s, j)) == start:
                best = j if best is None else max(best, j)
        return best

    def _after(self, scene: int, index: int, start: int) -> None:
        self.live = (scene, index)
        self.starts[(scene, index)] = start
        if (index - start) % self.config.snapshot_every == 0:
            self._snapshot((scene, index))

    def _chain(self, index: int, scene: int) -> tuple[int, int | None]:
        """(first frame of ``index``'s chain, latest kept state of that chain before ``index`` or None)."""
        k = self.config.reset_every
        reset_point = bool(k) and index % k == 0
        if self.live == (scene, index - 1) and not reset_point:
            return self.starts[(scene, index - 1)], index - 1  # in order: carry the live state on
        if reset_point:
            start = index
        elif self.fetch is not None or self.scene_start is not None:
            start = self._chain_start(index, scene)
        elif self.live is None or self.live[0] != scene:
            start = index  # a stream without random access: its first frame of a scene starts the chain
        else:
            raise ConfigError(
                f"Online adaptation got frame {index} after frame {self.live[1]} of the same scene without a way to "
                "fetch the frames between; pass fetch= for random access."
            )
        return start, self._base(scene, start, index)

    def replay_range(self, index: int, scene: int, *, hold: bool = False) -> range:
        """The earlier frames :meth:`frame` would re-adapt to serve ``index`` now (empty in order).

        ``hold=True`` keeps the state the range starts from until :meth:`release` (``index``),
        so that a driver that fetches exactly these frames for a later request (VapourSynth)
        finds them enough even if other requests run meanwhile.
        """
        start, base = self._chain(index, scene)
        if hold and base is not None:
            key = (scene, base)
            if key not in self.snapshots and self.live == key:
                self._snapshot(key)  # the live state moves on: keep a copy to come back to
            self._pins[key] = self._pins.get(key, 0) + 1
            self._held.setdefault(index, []).append(key)
        return range(start if base is None else base + 1, index)

    def release(self, index: int) -> None:
        """Let go of a state held for ``index`` by :meth:`replay_range`."""
        keys = self._held.get(index)
        if not keys:
            return
        key = keys.pop()
        if not keys:
            del self._held[index]
        self._pins[key] -= 1
        if not self._pins[key]:
            del self._pins[key]

    def frame(self, window: torch.Tensor, index: int, scene: int) -> OnlineFrame:
        """Adapt on frame ``index`` (window (T, C, H, W), scene id ``scene``) and upscale it -> :class:`OnlineFrame`."""
        t0 = time.perf_counter()
        start, base = self._chain(index, scene)
        if base is None:
            self._reset()
            first = start
        else:
            if self.live != (scene, base):
                self._restore((scene, base))
            first = base + 1
        replayed = 0
        for j in range(first, index):  # out of order: re-adapt the frames between
            w, s = self.fetch(j)  # type: ignore[misc]
            self._adapt(w.to(window.device), j, s, start)
            self._after(scene, j, start)
            replayed += 1
        losses, diverged = self._adapt(window, index, scene, start)
        frozen = probe.enabled(self.config) and self._rates.get((scene, start)) is None
        self._after(scene, index, start)
        t1 = time.perf_counter()
        with torch.no_grad():
            deg = self.degradation(scene, window)
            out_hw = check_degradation(deg, tuple(window.shape[-2:]), self.scale)
            net = self.trained if diverged else self.net
            if self.forward is not None:
                out = self.forward(net, window[None])[0]  # (C, oH, oW)
            else:
                out = torch.nan_to_num(upscale(net, window[None], out_hw)[0], nan=0.0).clamp_(0.0, 1.0)
        t2 = time.perf_counter()
        nan = float("nan")
        return OnlineFrame(
            output=out,
            loss_before=losses[0] if losses else nan,
            loss_after=losses[-1] if losses else nan,
            steps=len(losses) - (1 if diverged else 0),
            replayed=replayed,
            adapt_seconds=t1 - t0,
            infer_seconds=t2 - t1,
            fallback=diverged,
            guarded=frozen,
            lr=None if frozen or not self.config.steps_per_frame else float(self.opt.param_groups[0]["lr"]),
        )


class Method:
    """``--adapt online``: the :class:`OnlineAdapter` behind the method interface."""

    def __init__(self, context: Context) -> None:
        self.ctx = context
        self.online = OnlineAdapter(
            context.model, context.scale, context.config, context.degradation, fetch=context.fetch, forward=context.forward
        )

    def reset(self) -> None:
        """A new clip: chains, snapshots and scene kernels are forgotten."""
        self.online.forget()

    def replay_range(self, index: int, scene: int, *, hold: bool = False) -> range:
        """Earlier frames that serving ``index`` now would re-adapt (see :meth:`OnlineAdapter.replay_range`)."""
        self.online.fetch = self.ctx.fetch
        self.online.scene_start = self.ctx.scene_start
        return self.online.replay_range(index, scene, hold=hold)

    def release(self, index: int) -> None:
        """Let go of what :meth:`replay_range` held for ``index``."""
        self.online.release(index)

    def frame(self, window: torch.Tensor, index: int, scene: int) -> MethodResult:
        """Carry the weights on to frame ``index`` (window (1, T, C, H, W)) and upscale it."""
        self.online.fetch = self.ctx.fetch  # a driver may hand over random access after construction
        self.online.scene_start = self.ctx.scene_start
        r = self.online.frame(window[0], index, scene)
        return MethodResult(
            output=r.output[None], loss_before=r.loss_before, loss_after=r.loss_after, steps=r.steps,
            infer_seconds=r.infer_seconds, fallback=r.fallback, unchanged=r.fallback or r.guarded, replayed=r.replayed,
            guarded=r.guarded, lr=r.lr,
        )


def _clone_state(state: dict) -> dict:
    """Deep copy of an optimizer state_dict (tensors cloned)."""
    out = {"param_groups": [dict(g) for g in state["param_groups"]], "state": {}}
    for key, value in state["state"].items():
        out["state"][key] = {k: v.clone() if torch.is_tensor(v) else v for k, v in value.items()}
    return out
