"""The online budget: on small frames fewer steps, spread evenly, and random access stays exact."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.online import STEP_COST, OnlineAdapter, steps_at, steps_per_frame
from vsr_pipeline.degrade.operator import parse_degradation

DEG = parse_degradation("gauss:sigma=1.0", 2)


def online(**kw) -> AdaptConfig:
    base = dict(method="online", optimizer="sgd", lr=0.5, guard=0.0, lr_search=False, seed=3)
    base.update(kw)
    return AdaptConfig(**base)


def test_rate_follows_the_frame_size():
    cfg = online()  # defaults: 2 steps per frame, one 48² crop, budget 0.5
    assert cfg.budget == 0.5 and STEP_COST == 3.0
    assert steps_per_frame(cfg, (180, 320)) == 2.0  # 0.5·57600/(3·2304) = 4.17 > 2: uncapped
    assert steps_per_frame(cfg, (72, 96)) == pytest.approx(0.5)  # 0.5·6912/6912
    assert steps_per_frame(cfg, (96, 144)) == pytest.approx(0.5 * 96 * 144 / (3 * 48 * 48))
    assert steps_per_frame(online(crops=2), (72, 96)) == pytest.approx(0.25)
    assert steps_per_frame(online(crop=0), (72, 96)) == pytest.approx(0.5 / 3)  # whole frames
    assert steps_per_frame(online(crop=100), (72, 96)) == pytest.approx(0.5 / 3)  # a crop bigger than the frame is the frame
    assert steps_per_frame(online(crop=60), (72, 96)) == pytest.approx(0.5 * 6912 / (3 * 3600))
    assert steps_per_frame(online(budget=0.0), (12, 12)) == 2.0
    assert steps_per_frame(online(budget=0.0, steps_per_frame=3), (12, 12)) == 3.0
    assert steps_per_frame(online(budget=100.0), (72, 96)) == 2.0


@pytest.mark.parametrize(
    "rate,expected",
    [(2.0, [2, 2, 2, 2, 2, 2]), (0.5, [1, 0, 1, 0, 1, 0]), (1 / 3, [1, 0, 0, 1, 0, 0]),
     (0.375, [1, 0, 1, 0, 0, 1]), (1.5, [2, 1, 2, 1, 2, 1]), (0.0, [0, 0, 0, 0, 0, 0])],
)
def test_steps_are_spread_evenly_first_frame_first(rate, expected):
    got = [steps_at(rate, j) for j in range(6)]
    assert got == expected
    assert sum(steps_at(rate, j) for j in range(300)) == math.ceil(300 * rate - 1e-9)  # telescopes


def clip():
    lr = DEG(hr_clip(frames=6, h=24, w=24))  # (6, 3, 12, 12)
    return [lr[torch.arange(i - 2, i + 3).clamp(0, 5)] for i in range(6)]


def test_small_frames_take_fewer_steps_and_carry_the_weights():
    wins = clip()
    cfg = online(crop=8, steps_per_frame=2, budget=0.5)  # 0.5·144/(3·64) = 0.375 steps per frame
    a = OnlineAdapter(tiny_net(2), 2.0, cfg, lambda s, w: DEG)
    trained = a.trained
    steps, outs = [], []
    for i, w in enumerate(wins):
        before = {k: v.clone() for k, v in a.net.state_dict().items()}
        r = a.frame(w, i, 0)
        moved = any(not torch.equal(before[k], v) for k, v in a.net.state_dict().items())
        assert moved == (r.steps > 0), f"frame {i}"
        steps.append(r.steps)
        outs.append(r.output)
        assert r.lr == 0.5
    assert steps == [1, 0, 1, 0, 0, 1]
    with torch.no_grad():  # a frame without steps still uses the carried (adapted) weights
        plain = trained(wins[1][None])[0].clamp(0, 1)
    assert not torch.equal(outs[1], plain)
    uncapped = OnlineAdapter(tiny_net(2), 2.0, online(crop=8, steps_per_frame=2, budget=0.0), lambda s, w: DEG)
    assert [uncapped.frame(w, i, 0).steps for i, w in enumerate(wins)] == [2] * 6


def test_random_access_with_a_budget_is_exact():
    wins = clip()
    cfg = online(crop=8, steps_per_frame=2, budget=0.5, snapshot_every=2)
    seq = OnlineAdapter(tiny_net(2), 2.0, cfg, lambda s, w: DEG)
    expected = [seq.frame(w, i, 0).output for i, w in enumerate(wins)]
    ra = OnlineAdapter(tiny_net(2), 2.0, cfg, lambda s, w: DEG, fetch=lambda i: (wins[i], 0))
    for i in [4, 1, 5, 0, 3, 2, 5]:
        assert torch.equal(ra.frame(wins[i], i, 0).output, expected[i]), f"frame {i}"
