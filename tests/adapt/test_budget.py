"""The online budget: on small frames smaller crops, then fewer steps spread evenly; random access stays exact."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.online import MIN_CROP, STEP_COST, OnlineAdapter, crop_size, steps_at, steps_per_frame
from vsr_pipeline.degrade.operator import parse_degradation

DEG = parse_degradation("gauss:sigma=1.0", 2)


def online(**kw) -> AdaptConfig:
    base = dict(method="online", optimizer="sgd", lr=0.5, guard=0.0, lr_search=False, seed=3, warmup=0)
    base.update(kw)
    return AdaptConfig(**base)


def test_crops_shrink_then_steps_thin_out_with_the_frame_size():
    cfg = online()  # defaults: 2 steps per frame, one 48² crop, budget 0.5
    assert cfg.budget == 0.5 and STEP_COST == 3.0 and MIN_CROP == 24
    # 320×180: 0.5·57600/(3·2) = 4800 px per crop > 48²: uncapped
    assert (crop_size(cfg, (180, 320)), steps_per_frame(cfg, (180, 320))) == (48, 2.0)
    # 96×72: 0.5·6912/6 = 576 = 24²: two steps on 24² crops
    assert (crop_size(cfg, (72, 96)), steps_per_frame(cfg, (72, 96))) == (24, 2.0)
    # 144×96: isqrt(1152) = 33
    assert (crop_size(cfg, (96, 144)), steps_per_frame(cfg, (96, 144))) == (33, 2.0)
    # 64×48: 256 px would be 16², below MIN_CROP: 24² crops, fewer steps
    assert crop_size(cfg, (48, 64)) == 24
    assert steps_per_frame(cfg, (48, 64)) == pytest.approx(0.5 * 3072 / (3 * 576))
    assert crop_size(online(crops=2), (72, 96)) == 24 and steps_per_frame(online(crops=2), (72, 96)) == pytest.approx(1.0)
    assert crop_size(online(steps_per_frame=1), (72, 96)) == 33  # isqrt(1152)
    assert crop_size(online(crop=20), (72, 96)) == 20  # a crop asked smaller than MIN_CROP stays
    assert crop_size(online(crop=60), (72, 96)) == 24
    for whole in (0, 100):  # whole frames (or a crop bigger than the frame) are never shrunk
        assert crop_size(online(crop=whole), (72, 96)) == whole
        assert steps_per_frame(online(crop=whole), (72, 96)) == pytest.approx(0.5 / 3)
    assert crop_size(online(budget=0.0), (72, 96)) == 48 and steps_per_frame(online(budget=0.0), (12, 12)) == 2.0
    assert steps_per_frame(online(budget=0.0, steps_per_frame=3), (12, 12)) == 3.0
    assert crop_size(online(budget=100.0), (72, 96)) == 48 and steps_per_frame(online(budget=100.0), (72, 96)) == 2.0
    assert crop_size(online(steps_per_frame=0), (72, 96)) == 48 and steps_per_frame(online(steps_per_frame=0), (72, 96)) == 0.0


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


def test_the_steps_use_the_shrunk_crop(monkeypatch):
    import vsr_pipeline.adapt.online as mod

    seen = []
    real = mod.random_crops
    monkeypatch.setattr(mod, "random_crops", lambda w, size, count, gen: seen.append(size) or real(w, size, count, gen))
    lr = DEG(hr_clip(frames=5, h=80, w=96))  # LR 40×48: isqrt(0.5·1920/6) = 12 -> MIN_CROP
    cfg = online(crop=32, steps_per_frame=2, budget=0.5)
    a = OnlineAdapter(tiny_net(2), 2.0, cfg, lambda s, w: DEG)
    r = a.frame(lr, 0, 0)
    assert seen == [24] * r.steps and r.steps == 1  # rate 0.5·1920/(3·576) = 0.56
    seen.clear()
    OnlineAdapter(tiny_net(2), 2.0, online(crop=32, steps_per_frame=2, budget=0.0), lambda s, w: DEG).frame(lr, 0, 0)
    assert seen == [32, 32]
