"""Online weight transfer: state carried within a scene, reset at cuts, order-independent random access."""

from __future__ import annotations

import pytest
import torch

from helpers import hr_clip, tiny_net
from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.online import OnlineAdapter
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError

CUT = 4  # frames 0-3 are scene 0, 4-6 scene 1
DEG = parse_degradation("gauss:sigma=1.0", 2)
CFG = AdaptConfig(optimizer="sgd", method="online", budget=0.0, lr=0.5, steps_per_frame=2, crop=8, crops=2, snapshot_every=2, seed=1, warmup=0)


def clip():
    lr = DEG(hr_clip(frames=7, h=24, w=24))  # (7, 3, 12, 12)
    scenes = [0 if i < CUT else 1 for i in range(7)]
    return lr, scenes


def windows_of(lr, scenes):
    """Windows that do not cross the cut (edges replicated inside each scene)."""
    out = []
    for i in range(len(lr)):
        lo, hi = (0, CUT) if scenes[i] == 0 else (CUT, len(lr))
        idx = torch.arange(i - 2, i + 3).clamp(lo, hi - 1)
        out.append(lr[idx])
    return out


def make(fetch=None, cfg=CFG):
    return OnlineAdapter(tiny_net(2), 2.0, cfg, lambda scene, w: DEG, fetch=fetch)


def test_optimiser_state_is_carried():
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    a = make(cfg=ADAM)
    assert a.frame(wins[0], 0, 0).steps == 5  # the chain's first frame: 2 steps + 3 warm-up steps
    state = a.opt.state_dict()["state"]
    assert state and all(int(v["step"]) == 5 for v in state.values())
    assert a.frame(wins[1], 1, 0).steps == 2
    assert all(int(v["step"]) == 7 for v in a.opt.state_dict()["state"].values())
    assert a.frame(wins[CUT], CUT, 1).steps == 5  # a cut: fresh optimiser, warm-up again
    assert all(int(v["step"]) == 5 for v in a.opt.state_dict()["state"].values())


def test_weights_carry_within_a_scene_and_reset_at_a_cut():
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    a = make()
    trained = {k: v.clone() for k, v in a.trained.state_dict().items()}
    a.frame(wins[0], 0, 0)
    after0 = {k: v.clone() for k, v in a.net.state_dict().items()}
    assert any(not torch.equal(trained[k], v) for k, v in after0.items())  # adapted
    a.frame(wins[1], 1, 0)
    # frame 1 started from frame 0's weights: the same as a fresh chain fed frames 0 and 1
    b = make()
    b.frame(wins[0], 0, 0)
    rb = b.frame(wins[1], 1, 0)
    assert all(torch.equal(v, b.net.state_dict()[k]) for k, v in a.net.state_dict().items())
    # ...and differs from adapting frame 1 alone from the trained weights
    c = make()
    rc = c.frame(wins[1], 1, 0)
    assert not torch.equal(rb.output, rc.output)
    for i in range(2, CUT + 1):
        r = a.frame(wins[i], i, scenes[i])
    fresh = make().frame(wins[CUT], CUT, 1)  # first frame of scene 1 from the trained weights
    assert torch.equal(r.output, fresh.output)
    assert all(torch.equal(trained[k], v) for k, v in a.trained.state_dict().items())  # caller's model untouched


ADAM = AdaptConfig(method="online", budget=0.0, guard=0.0, lr_search=False, optimizer="adam", lr=1e-2, steps_per_frame=2, crop=8, crops=2, snapshot_every=3, seed=2, warmup=3)


@pytest.mark.parametrize("cfg", [CFG, ADAM], ids=["sgd", "adam"])
def test_random_access_is_order_independent(cfg):
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    seq = make(cfg=cfg)
    expected = [seq.frame(wins[i], i, scenes[i]).output for i in range(len(wins))]
    fetched = []

    def fetch(i):
        fetched.append(i)
        return wins[i], scenes[i]

    ra = make(fetch, cfg=cfg)
    for i in [5, 2, 6, 0, 3, 1, 4, 2, 6]:
        r = ra.frame(wins[i], i, scenes[i])
        assert torch.equal(r.output, expected[i]), f"frame {i}"
    assert fetched  # the out-of-order requests replayed earlier frames


def test_reset_every_bounds_the_chain():
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    cfg = AdaptConfig(optimizer="sgd", method="online", budget=0.0, lr=0.5, steps_per_frame=1, crop=8, reset_every=2, seed=1)
    seq = make(cfg=cfg)
    expected = [seq.frame(wins[i], i, scenes[i]).output for i in range(len(wins))]
    fetched = []
    ra = make(lambda i: (fetched.append(i), (wins[i], scenes[i]))[1], cfg=cfg)
    assert torch.equal(ra.frame(wins[3], 3, 0).output, expected[3])
    assert fetched == [2, 2]  # scene check of frame 2, then its replay; nothing before the reset point 2


def test_out_of_order_without_fetch_is_refused():
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    a = make()
    a.frame(wins[0], 0, 0)
    with pytest.raises(ConfigError, match="fetch"):
        a.frame(wins[2], 2, 0)


def test_adapter_online_report(tmp_path):
    lr, scenes = clip()
    wins = torch.stack(windows_of(lr, scenes))  # (7, 5, 3, 12, 12)
    adapter = Adapter(tiny_net(2), 2, AdaptConfig(optimizer="sgd", method="online", budget=0.0, degradation="gauss:sigma=1.0", lr=0.5, crop=8, steps_per_frame=1, warmup=2))
    out = adapter.process(wins, list(range(7)), scenes)
    assert out.shape == (7, 3, 24, 24) and torch.isfinite(out).all()
    rep = adapter.report.to_dict()
    assert rep["totals"]["frames"] == 7 and rep["totals"]["steps"] == 7 + 2 * 2  # two scenes, two warm-up steps each
    adapter.report.write_json(tmp_path / "run.json")
    assert (tmp_path / "run.json").read_text().startswith("{")


def test_a_held_state_survives_other_requests(monkeypatch):
    """A planned request keeps the state its replay range starts from, even when other work would evict it."""
    import vsr_pipeline.adapt.online as online

    monkeypatch.setattr(online, "MAX_SNAPSHOTS", 2)
    lr, scenes = clip()
    wins = windows_of(lr, scenes)
    cfg = AdaptConfig(method="online", budget=0.0, steps_per_frame=1, crop=16, snapshot_every=1)
    asked = []

    def fetch(i):
        asked.append(i)
        return wins[i], scenes[i]

    ref = make(fetch, cfg)
    want = [ref.frame(wins[i], i, scenes[i]).output for i in range(4)]
    for hold in (True, False):
        adapter = make(fetch, cfg)
        adapter.scene_start = lambda i: 0  # one scene here: frames 0..3 share it
        for i in range(3):
            adapter.frame(wins[i], i, 0)
        planned = adapter.replay_range(3, 0, hold=hold)
        assert len(planned) == 0  # in order: nothing to replay
        adapter.live = None  # another request moved the live state away ...
        adapter._snapshot((99, 0))  # ... and filled the snapshot store
        adapter._snapshot((99, 1))
        asked.clear()
        got = adapter.frame(wins[3], 3, 0).output
        if hold:
            assert asked == [] and torch.equal(got, want[3])  # served from the held state, no replay
            adapter.release(3)
            assert adapter._pins == {}
        else:
            assert asked == [0, 1, 2]  # without the hold the state was evicted: a full replay
            assert torch.equal(got, want[3])


def test_warmup_is_checked():
    with pytest.raises(ConfigError, match="--adapt-warmup must be ≥ 0"):
        AdaptConfig(method="online", warmup=-1)
    with pytest.raises(ConfigError, match="--adapt-warmup applies only with --adapt online"):
        AdaptConfig(method="consistency", warmup=3)
    assert AdaptConfig(method="online").warmup == 4
    assert AdaptConfig(method="consistency").patience == 3  # Adam needs more than the paper's 2 (docs/adaptation.md)
