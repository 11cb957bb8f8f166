"""``--runtime auto``: which installed runtime serves the output passes, by a stated rule.

The rule: on the first batch, every usable runtime makes the runner's whole output pass
(tiles included) once to warm up (export, compile) — that output must match torch's within
:data:`TOLERANCE` on [0, 1] — then :data:`ROUNDS` more times, interleaved; a runtime's time
is its fastest round. The fastest matching runtime wins, but one other than torch only when
it takes at most :data:`MARGIN` of torch's time, so noise never picks a slower one.
Frames under :data:`MIN_PIXELS` stay on torch without a trial: there the export and
compilation (about a second) would cost more than the runtimes can save.

A process decides once per network: a trial's answer is remembered (:func:`remember`,
:func:`recall`) under the network's weights, the batch shape, the device, the thread count
and the kind of pass timed, so a batch worker's later clips, further ``enhance`` calls and
further filters in one script skip the trial (its timing rounds and the builds of the
runtimes not chosen, several seconds a clip at one thread).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

TOLERANCE = 1e-5  # max |runtime - torch| on clamped [0, 1] outputs for a runtime to count as the same output
ROUNDS = 2  # timed rounds per runtime after the warm-up
MARGIN = 0.95  # a runtime other than torch must take at most this fraction of torch's time
MIN_PIXELS = 128 * 72  # LR pixels per frame below which auto keeps torch without a trial
REMEMBERED = 64  # trial answers a process keeps (the oldest is forgotten first)

_decided: OrderedDict[tuple, "Choice"] = OrderedDict()  # trial_key -> the choice a trial made in this process


@dataclass
class Choice:
    """What ``auto`` decided, for the run report."""

    runtime: str  # the chosen runtime
    asked: str = "auto"  # what --runtime said
    seconds: dict[str, float] = field(default_factory=dict)  # fastest timed round per runtime (trial)
    differences: dict[str, float] = field(default_factory=dict)  # max |output - torch| per runtime (trial)
    failed: dict[str, str] = field(default_factory=dict)  # runtimes that could not run, and why
    note: str = ""  # why there was no trial, if there was none

    def to_dict(self) -> dict:
        """Plain JSON-serialisable data."""
        out = {"name": self.runtime, "asked": self.asked, "trial_seconds": self.seconds,
               "trial_max_difference": self.differences, "failed": self.failed}
        return {**out, "note": self.note} if self.note else out


def trial_key(model: torch.nn.Module, shape: tuple[int, ...], device: torch.device, adapted: bool, tiling: tuple[int, int] = (0, 0)) -> tuple:
    """What a trial's answer depends on: the weights (a digest), batch shape, device, threads, pass kind, (tile, pad)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return (type(model).__qualname__, digest.hexdigest(), tuple(shape), str(device), torch.get_num_threads(), adapted, tuple(tiling))


def remember(key: tuple, choice: "Choice") -> None:
    """Keep ``choice`` (a trial's answer) for :func:`recall` in this process."""
    _decided[key] = choice
    _decided.move_to_end(key)
    while len(_decided) > REMEMBERED:
        _decided.popitem(last=False)


def recall(key: tuple) -> "Choice | None":
    """The earlier trial's choice for ``key`` in this process, marked as recalled; None when there was none."""
    earlier = _decided.get(key)
    if earlier is None:
        return None
    return Choice(earlier.runtime, "auto", dict(earlier.seconds), dict(earlier.differences), dict(earlier.failed),
                  note="decided by an earlier trial in this process (same network, frame size and threads)")


def forget() -> None:
    """Forget every remembered trial (tests; a changed machine)."""
    _decided.clear()


def choose(seconds: dict[str, float], differences: dict[str, float]) -> str:
    """The rule above on measured ``seconds`` and ``differences`` per runtime (torch must be among them)."""
    same = {n: s for n, s in seconds.items() if n == "torch" or differences.get(n, float("inf")) <= TOLERANCE}
    best = min(same, key=lambda n: (same[n], n != "torch"))
    if best != "torch" and same[best] > MARGIN * same["torch"]:
        return "torch"
    return best


def trial(passes: dict[str, Callable[[], torch.Tensor]]) -> tuple[Choice, torch.Tensor]:
    """Time the output pass of each runtime (``name -> () -> output``; torch's first) and apply :func:`choose`.

    Returns the choice and the chosen runtime's output of the trial batch (the batch's
    result), so that a run's frames all come from one runtime whether or not it made the
    trial (a remembered choice makes none).
    """
    outputs: dict[str, torch.Tensor] = {}
    failed: dict[str, str] = {}
    for name, run in passes.items():
        try:
            outputs[name] = run().clamp(0, 1)
        except Exception as exc:  # a runtime that cannot export or run this network is skipped, not fatal
            if name == "torch":
                raise
            log.warning("runtime %s cannot run this model (%s); it is left out", name, exc)
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
    ref = outputs["torch"]
    differences = {n: float((y - ref).abs().max()) if y.shape == ref.shape else float("inf") for n, y in outputs.items()}
    same = [n for n in outputs if n == "torch" or differences[n] <= TOLERANCE]  # another output is never chosen: not timed
    times: dict[str, list[float]] = {n: [] for n in same}
    for _ in range(ROUNDS):
        for name in same:
            t0 = time.perf_counter()
            passes[name]()
            times[name].append(time.perf_counter() - t0)
    seconds = {n: min(v) for n, v in times.items()}
    chosen = choose(seconds, differences)
    log.info("runtime auto: %s (trial s/batch %s; max difference %s)", chosen,
             {n: round(s, 4) for n, s in seconds.items()}, {n: f"{d:.1e}" for n, d in differences.items()})
    return Choice(chosen, "auto", seconds, differences, failed), outputs[chosen]
