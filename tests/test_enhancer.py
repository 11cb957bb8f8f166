"""The reusable stage: built once, fed windows, reused across files; tiling with every adaptation method."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import vsr_pipeline
from vsr_pipeline import enhancer as enhancer_module
from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.api import make_config
from vsr_pipeline.config import RunnerConfig, StageConfig
from vsr_pipeline.enhancer import Enhancer
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig
from vsr_pipeline.runner import Runner

from clips import make_clip


def tiny_net() -> VSRNet:
    torch.manual_seed(0)
    return VSRNet(VSRNetConfig(scale=2, features=8, blocks=1), name="tiny-x2")


def decoded(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_stage_reused_for_two_files_loads_once_and_matches_separate_runs(tmp_path, tiny_weights, monkeypatch):
    a = make_clip(tmp_path / "a.mp4", n=6, size=(32, 24))
    b = make_clip(tmp_path / "b.mkv", n=5, size=(40, 24))
    opts = dict(model=str(tiny_weights), scale=2, adapt="online", codec="ffv1", pix_fmt="yuv444p")
    # separate runs: each builds its own stage
    vsr_pipeline.enhance(a.path, tmp_path / "a_sep.mkv", **opts)
    vsr_pipeline.enhance(b.path, tmp_path / "b_sep.mkv", **opts)

    loads = []
    real = enhancer_module.load_model
    monkeypatch.setattr(enhancer_module, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    config = make_config(**opts)
    stage = Enhancer(config.stage)
    ra = vsr_pipeline.enhance(a.path, tmp_path / "a_one.mkv", stage=stage, **opts)
    rb = vsr_pipeline.enhance(b.path, tmp_path / "b_one.mkv", stage=stage, **opts)
    assert len(loads) == 1  # the model was loaded once for both files
    assert ra.frames == 6 and rb.frames == 5
    assert rb.adapt["totals"]["frames"] == 5  # the report restarted with the second clip
    for sep, one in (("a_sep.mkv", "a_one.mkv"), ("b_sep.mkv", "b_one.mkv")):
        x, y = decoded(tmp_path / sep), decoded(tmp_path / one)
        assert len(x) == len(y)
        assert all(np.array_equal(p, q) for p, q in zip(x, y))  # online state did not leak across files


def test_stage_refuses_a_run_with_other_settings(tmp_path, tiny_weights):
    a = make_clip(tmp_path / "a.mp4", n=3, size=(32, 24))
    stage = Enhancer(StageConfig(model=str(tiny_weights), scale=2))
    with pytest.raises(ConfigError, match="other settings"):
        vsr_pipeline.enhance(a.path, tmp_path / "o.mp4", stage=stage, model=str(tiny_weights), scale=3)
    assert not (tmp_path / "o.mp4").exists()


def test_stage_output_size_and_report():
    stage = Enhancer(StageConfig(scale=2, runner=RunnerConfig(device="cpu")), model=tiny_net())
    assert stage.output_size(24, 33) == (48, 66)
    assert stage.report() is None  # no adaptation: no report
    x = torch.rand(2, 5, 3, 12, 16)
    y = stage.process(x, [0, 1], [0, 0])
    assert y.shape == (2, 3, 24, 32) and float(y.min()) >= 0 and float(y.max()) <= 1
    with pytest.raises(ValueError):
        stage.process(x, [0], [0, 0])


METHOD_OPTIONS = {
    "consistency": dict(max_steps=2),
    "masked": dict(max_steps=2, mc_passes=3),
    "online": dict(steps_per_frame=2, crop=8),
    "internal": dict(max_steps=2),
}


def test_every_registered_method_is_covered():
    assert set(METHOD_OPTIONS) == {n for n, s in registry.METHODS.items() if s.module is not None}


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_tiled_output_matches_untiled_with_adaptation(method, monkeypatch):
    tiled_calls = []
    real = Runner._tiled
    monkeypatch.setattr(Runner, "_tiled", lambda self, *a: tiled_calls.append(1) or real(self, *a))
    torch.manual_seed(1)
    x = torch.rand(1, 5, 3, 20, 28)
    # the probe off: on random input it may rightly keep the trained weights; this test is about tiling
    adapt = AdaptConfig(method=method, degradation="gauss:sigma=1.0", guard=0.0, lr_search=False, **METHOD_OPTIONS[method])
    outs = {}
    for tile in (0, 12):  # 12 = the smallest tile the pad of 12 allows (config.min_tile)
        runner = RunnerConfig(device="cpu", tile=tile, tile_pad=12 if tile else RunnerConfig().tile_pad)
        stage = Enhancer(StageConfig(scale=2, runner=runner, adapt=adapt), model=tiny_net())
        outs[tile] = stage.process(x, [0], [0])
        report = stage.report()
        assert report["totals"]["frames"] == 1 and report["totals"]["steps"] > 0
    assert tiled_calls, "the output pass did not go through the tiled runner"
    assert outs[0].shape == outs[12].shape == (1, 3, 40, 56)
    assert (outs[0] - outs[12]).abs().max().item() < 1e-4
    # and adaptation did change the picture (the tiled pass used the adapted weights)
    plain = Enhancer(StageConfig(scale=2, runner=RunnerConfig(device="cpu")), model=tiny_net()).process(x, [0], [0])
    assert (outs[12] - plain).abs().max().item() > 1e-6


def test_stage_validates_before_any_frame():
    with pytest.raises(ConfigError, match="scale 2 or 4"):
        Enhancer(StageConfig(scale=3, adapt=AdaptConfig(method="consistency", degradation="estimate")), model=tiny_net())
    with pytest.raises(ConfigError, match="Invalid degradation spec"):
        Enhancer(StageConfig(scale=2, adapt=AdaptConfig(method="consistency", degradation="gauss:sigma=abc")), model=tiny_net())


def test_reset_forgets_the_last_clips_random_access():
    stage = Enhancer(StageConfig(scale=2, runner=RunnerConfig(device="cpu"), adapt=AdaptConfig(method="online")), model=tiny_net())
    stage.random_access(lambda i: (torch.zeros(5, 3, 8, 8), 0), lambda i: 0)
    assert stage.fetch is not None
    stage.reset()
    assert stage.fetch is None and stage.adapter.context.scene_start is None


def test_momentum_needs_sgd():
    with pytest.raises(ConfigError, match="--momentum applies only with --adapt-optimizer sgd"):
        AdaptConfig(method="consistency", momentum=0.9)
    assert AdaptConfig(method="consistency", optimizer="sgd", momentum=0.9).momentum == 0.9


def test_replays_follow_the_registry_not_the_method_name(monkeypatch):
    """The stage asks the registry whether a method carries weights from frame to frame: marking another method
    sequential makes the stage ask it for replays; a method registered sequential without replay_range is refused."""
    calls = []

    def fake_replay(self, index, scene, *, hold=False):
        calls.append((index, scene, hold))
        return range(0, index)

    from vsr_pipeline.adapt.consistency import Method as Consistency

    cfg = StageConfig(model="vsrnet-x4", scale=2, adapt=AdaptConfig(method="consistency", max_steps=1))
    stage = Enhancer(cfg, model=tiny_net())
    assert stage.replay_range(3, 0) == range(3, 3) and not stage.runner.adapted  # per-frame: nothing to replay
    online = Enhancer(StageConfig(model="vsrnet-x4", scale=2, adapt=AdaptConfig(method="online")), model=tiny_net())
    assert online.runner.adapted

    marked = dict(registry.METHODS)
    marked["consistency"] = dataclasses.replace(registry.METHODS["consistency"], sequential=True)
    monkeypatch.setattr(registry, "METHODS", marked)
    with pytest.raises(TypeError, match="registered as sequential but has no replay_range, release"):
        Enhancer(cfg, model=tiny_net())
    monkeypatch.setattr(Consistency, "replay_range", fake_replay, raising=False)
    monkeypatch.setattr(Consistency, "release", lambda self, index: calls.append(("release", index)), raising=False)
    stage = Enhancer(cfg, model=tiny_net())
    assert stage.runner.adapted  # a separate output pass: the runtime choice knows the weights move
    assert stage.replay_range(4, 1, hold=True) == range(0, 4)
    stage.release(4)
    assert calls == [(4, 1, True), ("release", 4)]


def test_a_scene_estimated_ahead_is_the_one_its_frames_get(monkeypatch):
    """A driver that walks the clip first (VapourSynth) estimates each scene from its first window; a later request
    of the scene is answered from that estimate, not from the frames it happens to come with."""
    from vsr_pipeline.kernels.base import KernelEstimate

    seen = []
    cfg = StageConfig(model="vsrnet-x4", scale=2, adapt=AdaptConfig(method="consistency", degradation="estimate", max_steps=1))
    stage = Enhancer(cfg, model=tiny_net())
    assert stage.estimates_kernels
    assert not Enhancer(StageConfig(model="vsrnet-x4", scale=2), model=tiny_net()).estimates_kernels

    def fake(frames, scale, config):
        seen.append(float(frames.mean()))
        return KernelEstimate(kernel=np.ones((3, 3)) / 9, kernel_x2=np.ones((3, 3)) / 9, scale=scale)

    monkeypatch.setattr("vsr_pipeline.kernels.estimate.estimate_with", fake)
    first = torch.full((5, 3, 16, 16), 0.25)
    stage.estimate_scene(3, first)
    stage.estimate_scene(3, torch.full((5, 3, 16, 16), 0.75))  # same scene: already estimated
    assert seen == [0.25]
    got = stage.kernels.estimate_for_scene(3, torch.full((5, 3, 16, 16), 0.5))
    assert seen == [0.25] and got.kernel.shape == (3, 3)


def test_a_model_file_given_as_a_path_object(tmp_path, tiny_weights):
    """``model=Path(...)`` from Python works as the string does (it used to fail in the registry)."""
    from pathlib import Path

    from vsr_pipeline.api import make_config
    from vsr_pipeline.config import StageConfig

    config = make_config(model=Path(tiny_weights), scale=2)
    assert config.model == str(tiny_weights) and config.stage.model == str(tiny_weights)
    assert StageConfig(model=Path(tiny_weights)).model == str(tiny_weights)
    stage = Enhancer(config.stage)
    assert stage.name
