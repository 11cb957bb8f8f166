"""Algorithm 1's bookkeeping on a scripted loss sequence: it returns the *best* step's output and weights.

The objective's loss is a scripted number per call plus the weight itself (so that SGD moves
the weight by exactly ``lr`` per step and each step's output is told apart from the others).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vsr_pipeline.adapt.finetune import finetune, finetune_record


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))


def scripted(net: Scalar, values: list[float]):
    calls = {"n": 0}

    def objective(n):
        i = calls["n"]
        calls["n"] += 1
        out = n.w * torch.ones(1, 3, 2, 2)
        return out, n.w + values[i]  # d loss / d w = 1: every step moves w by -lr

    return objective, calls


def test_returns_the_best_steps_output_and_weights_not_the_last():
    net = Scalar()
    objective, calls = scripted(net, [5.0, 3.0, 4.0, 6.0, 0.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    # steps: 0 (w=1.0, 6.0), 1 (w=0.75, 3.75: best), 2 (w=0.5, 4.5), 3 (w=0.25, 6.25) -> 2 misses: stop
    assert calls["n"] == 4 and r.steps == 3
    assert r.best_step == 1
    assert r.losses == pytest.approx([6.0, 3.75, 4.5, 6.25])
    assert r.loss_before == pytest.approx(6.0) and r.loss_after == pytest.approx(3.75)
    assert torch.allclose(r.output, torch.full((1, 3, 2, 2), 0.75))  # the best step's output
    assert r.state["w"].item() == pytest.approx(0.75)  # ... and its weights
    assert net.w.item() == pytest.approx(0.25)  # the net itself ends at the last weights tried
    assert not r.diverged
    record = finetune_record(r, r.output)
    assert record.unchanged is False


def test_no_improvement_keeps_the_first_output_and_says_unchanged():
    net = Scalar()
    objective, _ = scripted(net, [1.0, 2.0, 3.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    assert r.best_step == 0 and torch.allclose(r.output, torch.ones(1, 3, 2, 2))
    assert r.loss_after == r.loss_before == pytest.approx(2.0)
    assert finetune_record(r, r.output).unchanged is True


def test_max_steps_caps_the_updates_and_the_last_step_can_be_best():
    net = Scalar()
    objective, calls = scripted(net, [9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=3)
    assert r.steps == 3 and calls["n"] == 4 and r.best_step == 3
    assert torch.allclose(r.output, torch.full((1, 3, 2, 2), 0.25))


def test_patience_counts_consecutive_misses_only():
    net = Scalar()
    # miss, new best, miss, new best, miss, miss -> stops after call 7
    objective, calls = scripted(net, [5.0, 6.0, 4.0, 5.0, 3.0, 9.0, 9.0, 0.0])
    r = finetune(net, objective, lr=0.1, patience=2, max_steps=20)
    assert calls["n"] == 7 and r.best_step == 4
    assert r.state["w"].item() == pytest.approx(1.0 - 4 * 0.1)


def test_divergence_returns_the_first_output():
    net = Scalar()
    objective, _ = scripted(net, [5.0, 3.0, math.nan])
    r = finetune(net, objective, lr=0.25, patience=2, max_steps=10)
    assert r.diverged and r.state is None
    assert torch.allclose(r.output, torch.ones(1, 3, 2, 2))
    assert finetune_record(r, r.output).fallback is True
