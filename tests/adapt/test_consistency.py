"""Algorithm 1 (data-consistency fine-tuning): loss, early stopping, PSNR gain, divergence, bad input."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.consistency import adapt_consistency
from vsr_pipeline.adapt.finetune import check_degradation, finetune
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.metrics import psnr


def scripted(values: list[float]):
    """An objective whose loss follows ``values`` step by step (the net's parameter still gets a gradient)."""
    calls = iter(values)

    def objective(net):
        p = next(net.parameters())
        v = next(calls)
        out = torch.full((1, 3, 4, 4), 0.5) + 0 * p.sum()
        return out, p.sum() * 0 + v

    return objective


def test_lowers_the_consistency_loss_and_leaves_the_model_alone():
    hr = hr_clip()
    deg = parse_degradation("gauss:sigma=1.5", 2)
    lr = deg(hr)  # (5, 3, 16, 16)
    net = tiny_net(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = adapt_consistency(net, lr[None], deg, 2, lr=0.6, max_steps=10)
    assert r.steps == 10 and r.loss_after < r.loss_before
    assert r.output.shape == (1, 3, 32, 32)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_true_degradation_raises_psnr():
    hr = hr_clip()
    deg = parse_degradation("gauss:sigma=1.5", 2)
    lr = deg(hr)
    net = tiny_net(2)
    with torch.no_grad():
        base = upscale(net, lr[None], (32, 32))[0].clamp(0, 1)
    r = adapt_consistency(net, lr[None], deg, 2, lr=0.6, max_steps=30)
    assert psnr(r.output[0].clamp(0, 1), hr[2], crop=2) > psnr(base, hr[2], crop=2) + 0.5


def test_stops_by_the_patience_rule():
    net = tiny_net(2)
    r = finetune(net, scripted([5.0, 4.0, 3.0, 3.5, 3.75, 1.0, 1.0]), lr=0.1, patience=2, max_steps=50)
    assert r.losses == [5.0, 4.0, 3.0, 3.5, 3.75]  # two steps without a new minimum
    assert r.steps == 4 and r.best_step == 2 and r.loss_after == 3.0
    r = finetune(tiny_net(2), scripted([5.0, 4.0, 4.5, 3.0, 3.25, 3.5]), lr=0.1, patience=2, max_steps=50)
    assert r.best_step == 3 and len(r.losses) == 6  # one bad step is forgiven
    r = finetune(tiny_net(2), scripted([5.0, 4.0, 3.0, 2.0]), lr=0.1, patience=2, max_steps=2)
    assert r.steps == 2 and len(r.losses) == 3  # the cap


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))


def quadratic(net):
    """Loss (w − 3)²: plain SGD with lr > 1 overshoots further at every step."""
    return net.w.expand(1, 1, 1, 1), (net.w - 3) ** 2


def test_backtracking_undoes_a_missed_step_and_retries_shorter():
    plain = finetune(Scalar(), quadratic, lr=1.5, patience=2, max_steps=20, optimizer="sgd")
    assert plain.best_step == 0 and plain.losses[:3] == [9.0, 36.0, 144.0]  # Algorithm 1 as published: stuck
    bt = finetune(Scalar(), quadratic, lr=1.5, patience=2, max_steps=20, optimizer="sgd", backtrack=0.5)
    # step 1 (lr 1.5) lands on w = 9: a miss, undone; the retry from w = 0 with lr 0.75 lands on 4.5
    assert bt.losses[:3] == [9.0, 36.0, 2.25]
    assert bt.loss_after < 1e-4 and not bt.diverged
    assert float(bt.state["w"]) == pytest.approx(3.0, abs=1e-2)


def test_backtracking_keeps_the_patience_rule_and_the_cap():
    r = finetune(tiny_net(2), scripted([5.0, 4.0, 6.0, 7.0, 1.0]), lr=0.1, patience=2, max_steps=50, backtrack=0.5)
    assert r.losses == [5.0, 4.0, 6.0, 7.0] and r.best_step == 1  # two misses in a row, even with retries
    r = finetune(tiny_net(2), scripted([5.0, 4.0, 6.0, 3.0, 2.0, 1.0]), lr=0.1, patience=2, max_steps=4, backtrack=0.5)
    assert r.steps == 4 and r.best_step == 5 - 1


def test_backtracking_retries_after_a_non_finite_loss(caplog):
    with caplog.at_level(logging.WARNING):
        r = finetune(tiny_net(2), scripted([1.0, 0.5, math.nan, 0.25, 0.3, 0.4]), lr=0.1, patience=2, backtrack=0.5)
    assert not r.diverged and r.loss_after == 0.25 and "diverged" not in caplog.text
    with pytest.raises(ConfigError, match="backtracking factor"):
        finetune(tiny_net(2), scripted([1.0]), lr=0.1, backtrack=1.5)
    with pytest.raises(ConfigError, match="--backtrack"):
        AdaptConfig(method="consistency", backtrack=-0.1)


def test_divergence_falls_back_to_the_trained_output_and_warns(caplog):
    net = tiny_net(2)
    with caplog.at_level(logging.WARNING):
        r = finetune(net, scripted([1.0, 0.5, math.nan]), lr=0.1)
    assert r.diverged and r.state is None and "diverged" in caplog.text
    assert torch.equal(r.output, torch.full((1, 3, 4, 4), 0.5))


def test_adapter_never_outputs_nan_after_divergence(caplog):
    hr = hr_clip()
    lr = parse_degradation("bicubic", 2)(hr)
    adapter = Adapter(tiny_net(2), 2, AdaptConfig(optimizer="sgd", method="consistency", lr=1e6, max_steps=5, guard=0.0, lr_search=False))  # blows up
    with caplog.at_level(logging.WARNING):
        out = adapter.process(lr[None], [0], [0])
    assert torch.isfinite(out).all() and out.shape == (1, 3, 32, 32)
    rec = adapter.report.frames[0]
    assert rec.fallback and "diverged" in caplog.text


def test_non_native_scale_uses_the_runner_size():
    hr = hr_clip(h=30, w=30)
    deg = parse_degradation("bicubic", 3)
    lr = deg(hr)  # (5, 3, 10, 10)
    r = adapt_consistency(tiny_net(2), lr[None], deg, 3, lr=0.3, max_steps=2)  # a x2 net asked for x3
    assert r.output.shape == (1, 3, 30, 30)


def test_bad_degradation_for_the_scale():
    with pytest.raises(ConfigError, match="integer scale"):
        Adapter(tiny_net(2), 2.5, AdaptConfig(optimizer="sgd", method="consistency", degradation="disk:radius=2,down=stride"))
    with pytest.raises(ConfigError, match="cannot be used for adaptation"):
        check_degradation(parse_degradation("bicubic", 2.5), (3, 3), 2.5)  # 8 px out -> 4 px back, not 3
    with pytest.raises(ConfigError, match="scale 3"):
        check_degradation(parse_degradation("bicubic", 3), (8, 8), 2)
    with pytest.raises(ConfigError, match="estimate"):
        Adapter(tiny_net(2), 2, AdaptConfig(optimizer="sgd", method="consistency", degradation="estimate"))
    with pytest.raises(ConfigError, match="Unknown adaptation method"):
        AdaptConfig(method="magic")
