"""Step size and guard (issue 15, item 2): the probe's crops, its choice, the guard, and how methods use them."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from helpers import hr_clip, tiny_net, window_at
from photos import photo_crop, y_psnr
from vsr_pipeline.adapt import probe
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.consistency import consistency_objective
from vsr_pipeline.adapt.online import OnlineAdapter
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.vsrnet import shipped_weights

DEG = parse_degradation("gauss:sigma=1.0", 2)


def lr_clip(frames=5, size=32):
    return DEG(hr_clip(frames=frames, h=size, w=size))  # (N, 3, size/2, size/2)


def objective_for(crops):
    return consistency_objective(crops, DEG, tuple(2 * s for s in crops.shape[-2:]))


def test_split_crops_come_from_disjoint_halves_and_are_seeded():
    t, c, h, w = 5, 1, 20, 40
    cols = torch.arange(w, dtype=torch.float32).expand(t, c, h, w)
    train, held = probe.split_crops(cols, 8, 6, seed=3)
    assert train.shape == held.shape == (6, t, c, 8, 8)
    assert train.max() < w // 2 <= held.min()  # cut across the longer side (width)
    rows = torch.arange(w, dtype=torch.float32)[:, None].expand(t, c, w, h)  # taller than wide: cut across the height
    tr, he = probe.split_crops(rows, 8, 6, seed=3)
    assert tr.max() < w // 2 <= he.min()
    again = probe.split_crops(cols, 8, 6, seed=3)
    assert torch.equal(again[0], train) and torch.equal(again[1], held)
    assert not torch.equal(probe.split_crops(cols, 8, 6, seed=4)[0], train)
    small = probe.split_crops(cols[..., :6, :10], 48, 2, seed=0)  # crops shrink to the half, one per half
    assert small[0].shape == small[1].shape == (1, t, c, 6, 5)
    # a half holds 72·48 / 48² = 1.5 crop areas: one crop each (not four overlapping ones)
    assert [x.shape[0] for x in probe.split_crops(torch.zeros(t, c, 72, 96), 48, 4, seed=0)] == [1, 1]
    assert [x.shape[0] for x in probe.split_crops(torch.zeros(t, c, 96, 192), 48, 4, seed=0)] == [4, 4]
    assert [x.shape[0] for x in probe.split_crops(torch.zeros(t, c, 96, 192), 48, 5, seed=0)] == [4, 4]
    assert [x.shape[0] for x in probe.split_crops(torch.zeros(t, c, 96, 191), 48, 5, seed=0)] == [3, 4]  # halves 95 and 96 wide


def test_candidates():
    assert probe.candidates(AdaptConfig(method="online", lr=1e-3, lr_search=False)) == [1e-3]
    assert probe.candidates(AdaptConfig(method="online", lr=1e-3)) == [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]


# On this window the tiny net's held-out loss drops by 1.6 % after four SGD steps at 0.05,
# by 12.9 % at 0.5, and by less at every smaller rate.
SGD = dict(method="consistency", optimizer="sgd", lr=0.05)


def probe_of(**cfg):
    return probe.probe(tiny_net(2, seed=1), window_at(lr_clip(), 2), objective_for, AdaptConfig(**{**SGD, **cfg}), seed=0)


def test_a_configured_rate_that_passes_the_guard_is_kept_without_searching():
    found = probe_of(guard=0.01)
    assert found.lr == 0.05 and list(found.heldout) == [0.05]
    assert 0.01 < found.gain < 0.05 and found.heldout[0.05] < found.heldout_before
    assert probe_of(guard=0.0).lr == 0.05  # no guard: any improvement keeps it


def test_search_runs_when_the_configured_rate_fails_the_guard():
    found = probe_of(guard=0.1)
    assert sorted(found.heldout) == [0.05, 0.15, 0.5]  # walked up the ladder to its top; the smaller rates not tried
    assert found.lr == 0.5 and found.heldout[0.5] == min(found.heldout.values())
    assert found.gain == pytest.approx(1 - found.heldout[0.5] / found.heldout_before) and found.gain >= 0.1
    assert probe_of(guard=0.1, lr_search=False).lr is None  # without the search: only 0.05, which fails
    none = probe_of(guard=0.5)
    assert none.lr is None and sorted(none.heldout) == [0.05, 0.15, 0.5]  # nothing passes: keep the trained weights


LADDER = [10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01]  # candidates of lr 1, largest first


def walked(curve, start=1.0, before=math.inf):
    """The rungs :func:`probe.walk` tries, in order, on a held-out loss ``curve`` (rate -> loss); ``before``: the trained weights'."""
    order = []

    def attempt(lr):
        order.append(lr)
        return curve[lr]

    probe.walk(LADDER, start, attempt, curve[start], before)
    return order


def test_walk_goes_up_while_larger_rates_help_and_stops_at_the_first_that_does_not():
    curve = dict(zip(LADDER, [9.0, 2.0, 5.0, 6.0, 7.0, 8.0, 8.5]))  # minimum at 3; the start (5) helped a little
    assert walked(curve, before=5.5) == [3.0, 10.0]  # 10 is worse than 3: stop; never down
    assert walked({**curve, 10.0: 1.0}, before=5.5) == [3.0, 10.0]  # the top rung: the ladder ends
    flat = dict(zip(LADDER, [2.0, 2.0, 5.0, 6.0, 7.0, 8.0, 8.5]))  # a tie is no improvement
    assert walked(flat, before=5.5) == [3.0, 10.0]
    assert walked(dict(zip(LADDER, [7.0, 6.0, 5.0, 4.0, 3.0, 3.5, 4.0])), before=5.5) == [3.0, 0.3, 0.1, 0.03]  # up did not help: down


def test_walk_goes_down_first_when_the_start_made_the_loss_worse():
    curve = dict(zip(LADDER, [math.inf, 6.0, 5.0, 3.0, 2.0, 4.0, 4.5]))  # minimum at 0.1
    assert walked(curve, before=4.0) == [0.3, 0.1, 0.03]
    falling = dict(zip(LADDER, [math.inf, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]))  # keeps falling: to the bottom rung
    assert walked(falling, before=4.0) == [0.3, 0.1, 0.03, 0.01]
    # bigbuckbunny frame 120, σ = 1: the start overshoots (7.0 against 1.0), one rung up overshoots less (4.6)
    overshoot = dict(zip(LADDER, [1760.0, 4.6, 7.0, 0.44, 0.78, 0.93, 0.98]))
    assert walked(overshoot, before=1.0) == [0.3, 0.1]
    assert walked(overshoot, before=1.0)[0] == 0.3 and 3.0 not in walked(overshoot, before=1.0)
    assert walked(dict(zip(LADDER, [7.0, 4.0, 5.0, 5.5, 6.0, 7.0, 8.0])), before=4.5) == [0.3, 3.0, 10.0]  # down did not help: up


def test_walk_from_a_blown_up_start_finds_finite_rates_and_starts_off_ladder():
    curve = dict(zip(LADDER, [math.inf, math.inf, math.inf, 3.0, 2.0, 4.0, 4.5]))
    assert walked(curve, before=4.0) == [0.3, 0.1, 0.03]  # inf is worse than before: down; every finite loss beats inf
    curve_up = {**curve, 3.0: 1.0}
    assert walked(curve_up, before=math.inf) == [0.3, 0.1, 0.03]  # inf is not below an inf ``before``: down first
    off = {**dict(zip(LADDER, [9.0, 8.0, 7.0, 3.0, 2.0, 4.0, 4.5])), 0.9: 5.0}  # a rate between rungs starts at the nearest
    assert walked(off, start=0.9, before=4.0) == [0.3, 0.1, 0.03]


@pytest.mark.parametrize("seed", range(6))
def test_walk_finds_the_minimum_of_any_curve_with_one_minimum(seed):
    gen = torch.Generator().manual_seed(seed)
    low = int(torch.randint(0, 7, (1,), generator=gen))
    steps = torch.rand(7, generator=gen) + 0.1
    losses = [float(steps[min(i, low) : max(i, low)].sum()) for i in range(7)]  # falls to `low`, rises after
    curve = dict(zip(LADDER, losses))
    for before in (math.inf, 0.0, curve[1.0] + 0.05):  # whichever way the walk sets out
        tried = walked(curve, before=before) + [1.0]
        assert min(tried, key=curve.get) == LADDER[low]
        assert len(set(tried)) < 7 or low in (0, 6)  # fewer tries than the whole ladder unless the minimum is at an end


def test_a_rate_that_blows_up_is_never_chosen():
    found = probe_of(lr=50.0, guard=0.0, lr_search=False)
    assert found.lr is None and math.isinf(found.heldout[50.0])
    searched = probe_of(lr=50.0, guard=0.0)  # ladder 500 … 0.5: the small ones stay finite
    assert searched.lr is not None and searched.lr < 50 and math.isfinite(searched.heldout[searched.lr])
    assert 150.0 not in searched.heldout and 500.0 not in searched.heldout  # 50 made the loss worse (inf): only down


@pytest.mark.parametrize("method", ["consistency", "internal"])
def test_per_frame_methods_use_the_probe(method):
    net = tiny_net(2, seed=1)
    wins = torch.stack([window_at(lr_clip(), i) for i in range(2)])
    base = dict(method=method, degradation="gauss:sigma=1.0", optimizer="sgd", lr=0.05, max_steps=4)
    plain = Adapter(net, 2, AdaptConfig(**base, guard=0.0, lr_search=False))
    searched = Adapter(net, 2, AdaptConfig(**base, guard=0.1))
    guarded = Adapter(net, 2, AdaptConfig(**base, guard=0.99))
    out_plain = plain.process(wins, [0, 1], [0, 0])
    out_search = searched.process(wins, [0, 1], [0, 0])
    out_guard = guarded.process(wins, [0, 1], [0, 0])
    with torch.no_grad():
        trained = torch.cat([upscale(net, wins[i : i + 1], (32, 32)).clamp(0, 1) for i in range(2)])
    assert [f.lr for f in plain.report.frames] == [0.05, 0.05]
    cfg = searched.config
    objective = searched.method.objective
    deg = parse_degradation("gauss:sigma=1.0", 2)
    want = probe.probe(net, wins[0], lambda c: objective(c, deg, (2 * c.shape[-2], 2 * c.shape[-1])), cfg, probe.probe_seed(0, 0)).lr
    assert want not in (None, 0.05)  # 0.05 failed the guard; the search found a rate that passes
    assert [f.lr for f in searched.report.frames] == [want, want]  # streaming: the scene's first frame decides
    assert not torch.equal(out_search, out_plain)
    assert torch.equal(out_guard, trained)  # the guard kept the trained weights' own output
    t = guarded.report.totals()
    assert t["guarded"] == t["unchanged"] == 2 and t["steps"] == 0
    assert plain.report.totals()["guarded"] == 0


def test_masked_uses_the_probe():
    net = tiny_net(2, seed=1)
    wins = window_at(lr_clip(), 2)[None]
    cfg = dict(method="masked", degradation="gauss:sigma=1.0", optimizer="sgd", lr=0.05, mc_passes=4, mc_dropout=0.1, max_steps=4)
    guarded = Adapter(net, 2, AdaptConfig(**cfg, guard=0.99))
    out = guarded.process(wins, [2], [0])
    with torch.no_grad():
        assert torch.equal(out, upscale(net, wins, (32, 32)).clamp(0, 1))
    assert guarded.report.frames[0].guarded
    searched = Adapter(net, 2, AdaptConfig(**cfg, guard=0.1))
    searched.process(wins, [2], [0])
    assert searched.report.frames[0].lr == 0.5


def test_masked_probes_with_the_noise_floor(monkeypatch):
    floors = []
    real = probe.probe
    monkeypatch.setattr(probe, "probe", lambda *a, **k: floors.append(a[5] if len(a) > 5 else k.get("floor")) or real(*a, **k))
    cfg = dict(method="masked", degradation="gauss:sigma=1.0", optimizer="sgd", lr=0.05, mc_passes=4, mc_dropout=0.1, max_steps=2)
    Adapter(tiny_net(2, seed=1), 2, AdaptConfig(**cfg)).process(window_at(lr_clip(), 2)[None], [2], [0])
    assert floors == [probe.NOISE_FLOOR]


ONLINE = dict(method="online", budget=0.0, optimizer="sgd", steps_per_frame=2, crop=8, crops=2, snapshot_every=2, seed=1, warmup=0)


def online(cfg, fetch=None):
    return OnlineAdapter(tiny_net(2, seed=1), 2.0, cfg, lambda scene, w: DEG, fetch=fetch)


def test_online_search_sets_the_chain_rate_and_random_access_stays_exact():
    lr = lr_clip(frames=6)
    wins = [window_at(lr, i) for i in range(6)]
    scenes = [0, 0, 0, 1, 1, 1]
    cfg = AdaptConfig(**ONLINE, lr=0.05, guard=0.1)
    rates = {s: probe.probe(tiny_net(2, seed=1), wins[start], objective_for, cfg, probe.probe_seed(cfg.seed, start)).lr
             for s, start in ((0, 0), (1, 3))}  # each chain's rate comes from its first window
    assert all(r is not None and r != 0.05 for r in rates.values()), rates  # 0.05 failed the guard; the search found another
    seq = online(cfg)
    expected = []
    for i in range(6):
        r = seq.frame(wins[i], i, scenes[i])
        assert r.lr == rates[scenes[i]] and r.steps == 2 and not r.guarded
        expected.append(r.output)
    plain = online(AdaptConfig(**ONLINE, lr=0.05, guard=0.0, lr_search=False))
    assert not torch.equal(plain.frame(wins[0], 0, 0).output, expected[0])
    ra = online(cfg, fetch=lambda i: (wins[i], scenes[i]))
    for i in [4, 1, 5, 0, 2, 3]:
        assert torch.equal(ra.frame(wins[i], i, scenes[i]).output, expected[i]), i


def test_online_guard_freezes_the_chain():
    lr = lr_clip(frames=4)
    net = tiny_net(2, seed=1)
    a = OnlineAdapter(net, 2.0, AdaptConfig(**ONLINE, lr=0.05, guard=0.99), lambda scene, w: DEG)
    for i in range(4):
        w = window_at(lr, i)
        r = a.frame(w, i, 0)
        with torch.no_grad():
            assert torch.equal(r.output, upscale(net, w[None], (32, 32)).clamp(0, 1)[0])
        assert r.guarded and r.steps == 0 and r.lr is None
    loose = OnlineAdapter(net, 2.0, AdaptConfig(**ONLINE, lr=0.05, guard=0.01), lambda scene, w: DEG)
    r = loose.frame(window_at(lr, 0), 0, 0)
    assert not r.guarded and r.steps == 2


def test_guard_and_search_are_checked():
    with pytest.raises(ConfigError, match=r"--guard must be in \[0, 1\)"):
        AdaptConfig(method="online", guard=1.0)
    with pytest.raises(ConfigError, match="--guard applies only with --adapt"):
        AdaptConfig(method="none", guard=0.1)
    with pytest.raises(ConfigError, match="--lr-search applies only with --adapt"):
        AdaptConfig(method="none", lr_search=False)


def test_cli_reports_guarded_frames(tmp_path, tiny_weights):
    from clips import make_clip
    from vsr_pipeline.cli import main

    clip = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    out = tmp_path / "out.mkv"
    r = CliRunner().invoke(main, ["enhance", str(clip.path), str(out), "--model", str(tiny_weights), "--adapt", "consistency",
                                  "--guard", "0.99", "--max-steps", "3"])
    assert r.exit_code == 0, r.output
    assert "3 of 3 frames unchanged (3 kept by --guard: the held-out crops did not improve)" in r.output
    bad = CliRunner().invoke(main, ["enhance", str(clip.path), str(tmp_path / "b.mkv"), "--model", str(tiny_weights),
                                    "--adapt", "online", "--guard", "nan"])
    assert bad.exit_code == 7 and "--guard must be a finite number" in bad.output
    assert not (tmp_path / "b.mkv").exists()


def test_per_frame_methods_probe_once_per_scene_when_streaming_and_every_frame_in_random_access(monkeypatch):
    calls = []
    real = probe.probe
    monkeypatch.setattr(probe, "probe", lambda *a, **k: calls.append(1) or real(*a, **k))
    net = tiny_net(2, seed=1)
    lr = lr_clip(frames=4)
    wins = torch.stack([window_at(lr, i) for i in range(4)])
    cfg = AdaptConfig(method="consistency", degradation="gauss:sigma=1.0", optimizer="sgd", lr=1e-4, lr_search=True, max_steps=2)
    streaming = Adapter(net, 2, cfg)
    streaming.process(wins, [0, 1, 2, 3], [0, 0, 1, 1])
    assert len(calls) == 2  # the first frame of each scene
    streaming.reset()
    streaming.process(wins[:1], [0], [0])
    assert len(calls) == 3  # a new clip probes again
    calls.clear()
    random_access = Adapter(net, 2, cfg, fetch=lambda i: (wins[i], 0))
    random_access.process(wins, [0, 1, 2, 3], [0, 0, 1, 1])
    assert len(calls) == 4  # every frame: its answer cannot depend on request order


@pytest.mark.skipif(not shipped_weights("vsrnet-x4.safetensors").is_file(), reason="the shipped vsrnet-x4 weights are missing")
def test_guard_keeps_matched_footage_as_good_as_no_adaptation():
    """Issue 15: on footage the network was trained for (a photograph downscaled bicubic ×4),
    online adaptation at the defaults stays within 0.05 dB of none; with a fixed rate and no
    guard (the behaviour before the probe) the same run loses more than that."""
    from vsr_pipeline.degrade.resize import imresize
    from vsr_pipeline.models.registry import load_model

    hr = photo_crop("camera", 64, 64, 128)
    lr = imresize(hr, 0.25).clamp(0, 1).mul(255).round().div(255)
    w = lr[None, None].repeat(1, 5, 1, 1, 1)
    net = load_model("vsrnet-x4").eval()
    with torch.no_grad():
        none = y_psnr(net(w)[0].clamp(0, 1), hr)
    deltas = {}
    for name, cfg in (("defaults", {}), ("fixed", dict(guard=0.0, lr_search=False))):
        a = Adapter(net, 4, AdaptConfig(method="online", **cfg))
        outs = [a.process(w, [i], [0])[0] for i in range(2)]
        deltas[name] = [y_psnr(o, hr) - none for o in outs]
    assert min(deltas["defaults"]) >= -0.05, deltas
    assert min(deltas["fixed"]) < -0.05, deltas  # the probe is what keeps it


def test_noise_floor_keeps_the_trained_weights_without_trying_a_rate(monkeypatch):
    assert probe.QUANT_NOISE == pytest.approx(1 / (12 * 255**2)) and probe.NOISE_FLOOR == 2 * probe.QUANT_NOISE
    tried = []
    real_try = probe._try
    monkeypatch.setattr(probe, "_try", lambda *a: tried.append(a[1]) or real_try(*a))
    net = tiny_net(2)
    lr = lr_clip()
    window = window_at(lr, 2)
    before = probe.probe(net, window, objective_for, AdaptConfig(method="consistency", guard=0.02), seed=1)
    assert tried and not before.floored
    loss = before.heldout_before
    tried.clear()
    # the same window with the floor just above its held-out loss: no rate tried, trained weights kept
    res = probe.probe(net, window, objective_for, AdaptConfig(method="consistency", guard=0.02), seed=1, floor=loss * 1.001)
    assert res.floored and res.lr is None and res.heldout == {} and not tried and res.heldout_before == loss
    # just below it: the probe runs as usual
    res = probe.probe(net, window, objective_for, AdaptConfig(method="consistency", guard=0.02), seed=1, floor=loss * 0.999)
    assert not res.floored and tried
    # without a guard the floor does not apply (--guard 0: always adapt)
    tried.clear()
    res = probe.probe(net, window, objective_for, AdaptConfig(method="consistency", guard=0.0), seed=1, floor=loss * 10)
    assert not res.floored and tried and res.lr is not None


def test_online_probes_with_the_floor_only_for_the_consistency_objective(monkeypatch):
    floors = []
    monkeypatch.setattr(probe, "probe", lambda *a, **k: floors.append(a[5] if len(a) > 5 else k.get("floor")) or
                        probe.ProbeResult(lr=None, heldout_before=1.0))
    lr = lr_clip()
    for objective, want in (("consistency", probe.NOISE_FLOOR), ("internal", 0.0), ("both", 0.0)):
        cfg = AdaptConfig(method="online", objective=objective, crop=8)
        OnlineAdapter(tiny_net(2), 2.0, cfg, lambda s, w: DEG).frame(window_at(lr, 2), 0, 0)
        assert floors[-1] == want, objective


def test_online_chain_starts_from_the_probes_steps(monkeypatch):
    """The chain's first frame continues from the probe's chosen candidate (weights and optimiser), not from scratch."""
    import vsr_pipeline.adapt.online as online_mod

    lr = lr_clip(frames=6)
    wins = [window_at(lr, i) for i in range(6)]
    cfg = AdaptConfig(**{**ONLINE, "optimizer": "adam"}, lr=0.01, guard=0.0)
    net = tiny_net(2, seed=1)
    found = probe.probe(net, wins[0], objective_for, cfg, probe.probe_seed(cfg.seed, 0), probe.floor_for(cfg), keep_state=True)
    assert found.lr is not None and found.state is not None
    assert all(int(v["step"]) == probe.PROBE_STEPS for v in found.state[1]["state"].values())
    assert probe.probe(net, wins[0], objective_for, cfg, probe.probe_seed(cfg.seed, 0)).state is None  # only when asked
    a = OnlineAdapter(net, 2.0, cfg, lambda s, w: DEG)
    first = a.frame(wins[0], 0, 0)
    assert all(int(v["step"]) == probe.PROBE_STEPS + 2 for v in a.opt.state_dict()["state"].values())
    # the same two steps from the probe's state by hand give the same weights
    by_hand = OnlineAdapter(net, 2.0, AdaptConfig(**{**ONLINE, "optimizer": "adam"}, lr=found.lr, guard=0.0, lr_search=False),
                            lambda s, w: DEG)
    by_hand.net.load_state_dict(found.state[0])
    by_hand.opt.load_state_dict(found.state[1])
    gen = torch.Generator().manual_seed(online_mod.crop_seed(cfg.seed, 0))
    for _ in range(2):
        batch = online_mod.random_crops(wins[0], cfg.crop, cfg.crops, gen)
        with torch.enable_grad():
            _, loss = by_hand._objective(batch, DEG)(by_hand.net)
        by_hand.opt.zero_grad(set_to_none=True)
        loss.backward()
        by_hand.opt.step()
    assert all(torch.equal(v, by_hand.net.state_dict()[k]) for k, v in a.net.state_dict().items())
    # replays from the chain start still give the same frames, also after the kept state was evicted
    expected = [first.output] + [a.frame(wins[i], i, 0).output for i in range(1, 6)]
    monkeypatch.setattr(online_mod, "MAX_WARM", 0)
    ra = OnlineAdapter(net, 2.0, cfg, lambda s, w: DEG, fetch=lambda i: (wins[i], 0))
    for i in [3, 0, 5, 1]:
        assert torch.equal(ra.frame(wins[i], i, 0).output, expected[i]), i
    assert not ra._warm
