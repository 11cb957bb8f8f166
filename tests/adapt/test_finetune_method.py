"""The per-frame method frame (FinetuneMethod.frame, kept, crop_size) on a tiny net: what reaches whom."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import hr_clip, tiny_net, window_at
from vsr_pipeline.adapt import probe
from vsr_pipeline.adapt.base import Context, upscale
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.consistency import Method as Consistency
from vsr_pipeline.adapt.finetune import crop_size, finetune, kept
from vsr_pipeline.adapt.consistency import consistency_objective
from vsr_pipeline.adapt.base import trainable_copy
from vsr_pipeline.degrade.operator import parse_degradation
from vsr_pipeline.errors import ConfigError

DEG = parse_degradation("gauss:sigma=1.0", 2)
FIXED = dict(method="consistency", optimizer="sgd", lr=0.05, max_steps=2, patience=5, guard=0.0, lr_search=False)


def setup(forward=None, **cfg):
    net = tiny_net(2, seed=1)
    calls = []

    def degradation(scene, window):
        calls.append((scene, tuple(window.shape)))
        return DEG

    ctx = Context(net, 2.0, AdaptConfig(**{**FIXED, **cfg}), degradation, forward=forward)
    window = window_at(DEG(hr_clip(frames=5, h=16, w=24)), 2)[None]  # (1, 5, 3, 8, 12)
    return ctx, window, calls


def test_frame_runs_algorithm_1_with_the_scene_degradation_and_records_it():
    ctx, window, calls = setup()
    r = Consistency(ctx).frame(window, 3, 7)
    assert calls == [(7, (5, 3, 8, 12))]  # A' of the frame's scene, asked with its window
    net = trainable_copy(ctx.model)
    want = finetune(net, consistency_objective(window, DEG, (16, 24)), lr=0.05, patience=5, max_steps=2, optimizer="sgd")
    assert torch.equal(r.output, want.output.clamp(0, 1))  # the same run, the best step's own output
    assert r.steps == want.steps == 2 and r.lr == 0.05
    assert r.loss_before == pytest.approx(want.loss_before) and r.loss_after == pytest.approx(want.loss_after)
    assert r.infer_seconds == 0.0 and not r.guarded and not r.unchanged  # no separate output pass


def test_frame_uses_every_algorithm_1_option():
    ctx, window, _ = setup(optimizer="adam", lr=1e-3, max_steps=3, patience=1, backtrack=0.5, momentum=0.0)
    r = Consistency(ctx).frame(window, 0, 0)
    want = finetune(trainable_copy(ctx.model), consistency_objective(window, DEG, (16, 24)), lr=1e-3, patience=1,
                    max_steps=3, optimizer="adam", backtrack=0.5)
    assert torch.equal(r.output, want.output.clamp(0, 1)) and r.steps == want.steps
    ctx2, _, _ = setup(max_steps=1)
    assert Consistency(ctx2).frame(window, 0, 0).steps == 1


def test_frame_with_an_output_pass_uses_it_on_the_tuned_weights():
    seen = []

    def forward(net, windows):
        seen.append((net, tuple(windows.shape)))
        with torch.no_grad():
            return upscale(net, windows, (16, 24)).clamp(0, 1) * 0 + 0.5  # recognisable

    ctx, window, _ = setup(forward=forward)
    r = Consistency(ctx).frame(window, 0, 0)
    assert len(seen) == 1 and seen[0][1] == (1, 5, 3, 8, 12) and seen[0][0] is not ctx.model
    assert torch.equal(r.output, torch.full((1, 3, 16, 24), 0.5))
    assert 0.0 < r.infer_seconds < 60.0  # a duration, not a clock reading


def test_frame_asks_the_probe_with_the_methods_own_objective_on_crops(monkeypatch):
    got = {}

    def fake_probe(model, window, objective_for, config, seed=0, floor=0.0):
        crops = window[None].repeat(2, 1, 1, 1, 1)[..., :4, :6]  # (2, 5, 3, 4, 6)
        out, loss = objective_for(crops)(model)
        got.update(window=window.shape, out=out, loss=float(loss.detach()), seed=seed, model=model, floor=floor, crops=crops)
        return probe.ProbeResult(lr=0.125, heldout_before=1.0)

    monkeypatch.setattr(probe, "probe", fake_probe)
    ctx, window, _ = setup(guard=0.02)
    r = Consistency(ctx).frame(window, 4, 1)
    assert got["window"] == (5, 3, 8, 12) and got["out"].shape == (2, 3, 8, 12)  # crops' output at 2× the crop
    assert got["loss"] == pytest.approx(float(consistency_objective(got["crops"], DEG, (8, 12))(ctx.model)[1].detach()))
    assert got["model"] is ctx.model
    assert got["seed"] == probe.probe_seed(0, 4)
    assert got["floor"] == probe.NOISE_FLOOR  # the plain consistency loss has the 8-bit noise floor
    assert r.lr == 0.125
    Consistency(setup(guard=0.02, objective="both")[0]).frame(window, 4, 1)
    assert got["floor"] == 0.0  # with the internal loss added, no floor


def test_guarded_frame_is_the_trained_networks_output(monkeypatch):
    monkeypatch.setattr(probe, "probe", lambda *a, **k: probe.ProbeResult(lr=None, heldout_before=1.0))
    ctx, window, _ = setup(guard=0.5)
    r = Consistency(ctx).frame(window, 0, 0)
    with torch.no_grad():
        assert torch.equal(r.output, upscale(ctx.model, window, (16, 24)).clamp(0, 1))
    assert r.guarded and r.unchanged and r.steps == 0 and r.lr is None
    assert math.isnan(r.loss_before) and math.isnan(r.loss_after) and 0 < r.infer_seconds < 60


def test_kept_goes_through_the_output_pass():
    ctx, window, _ = setup(forward=lambda net, w: torch.full((1, 3, 16, 24), 0.25))
    r = kept(ctx, window, (16, 24))
    assert torch.equal(r.output, torch.full((1, 3, 16, 24), 0.25)) and r.guarded and r.fallback is False


def test_crop_size_checks_the_crops_against_the_degradation():
    assert crop_size(DEG, torch.zeros(2, 5, 3, 6, 10), 2.0) == (12, 20)
    with pytest.raises(ConfigError, match="for scale 2, but the output scale is 3"):
        crop_size(DEG, torch.zeros(2, 5, 3, 6, 10), 3.0)
