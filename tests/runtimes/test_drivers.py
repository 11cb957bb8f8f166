"""``--runtime`` through the drivers: the CLI, the API's run report, and the VapourSynth filter's ``runtime=``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from clips import make_clip, read_back

import vsr_pipeline
from vsr_pipeline.cli import main


def test_report_records_the_runtime(tmp_path, tiny_weights):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    c = make_clip(tmp_path / "in.mp4", n=4, size=(32, 24))
    report = tmp_path / "run.json"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "fast.mkv"), "-s", "2", "--model", str(tiny_weights),
                                  "--runtime", "onnxruntime", "--report", str(report)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["runtime"]["name"] == "onnxruntime" and data["runtime"]["asked"] == "onnxruntime"
    slow = vsr_pipeline.enhance(c.path, tmp_path / "slow.mkv", model=str(tiny_weights), scale=2, runtime="torch")
    assert slow.runtime["name"] == "torch" and slow.to_dict()["runtime"]["asked"] == "torch"
    assert len(read_back(tmp_path / "fast.mkv")["pts"]) == 4


def test_auto_on_small_frames_is_torch_and_says_why(tmp_path, tiny_weights):
    c = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    r = vsr_pipeline.enhance(c.path, tmp_path / "out.mkv", model=str(tiny_weights), scale=2)
    assert r.runtime["name"] == "torch" and r.runtime["asked"] == "auto" and "no trial" in r.runtime["note"]


def test_online_adaptation_output_pass_on_another_runtime(tiny_weights, monkeypatch):
    """The stage with online adaptation: steps in torch, each adapted output pass on OpenVINO (asked, or auto's
    choice), torch's frames within 1e-5."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    import torch

    from vsr_pipeline.runtimes import auto

    monkeypatch.setattr(auto, "MIN_PIXELS", 0)  # the test frames are small: make auto hold its trial
    import vsr_pipeline.runner as runner_mod

    monkeypatch.setattr(runner_mod, "usable", lambda device, half=False: ["torch", "openvino"])
    monkeypatch.setattr(auto, "choose", lambda seconds, differences: "openvino")  # as if it had won the trial

    from vsr_pipeline.adapt.config import AdaptConfig
    from vsr_pipeline.config import RunnerConfig, StageConfig
    from vsr_pipeline.enhancer import Enhancer

    adapt = AdaptConfig(method="online", steps_per_frame=2, guard=0.0, lr_search=False)
    outs, stages = {}, {}
    for rt in ("torch", "openvino", "auto"):
        stage = stages[rt] = Enhancer(StageConfig(model=str(tiny_weights), scale=2, runner=RunnerConfig(device="cpu", runtime=rt), adapt=adapt))
        torch.manual_seed(0)
        frames = torch.rand(8, 3, 20, 24)
        outs[rt] = torch.cat([stage.process(frames[i : i + 5][None], [i + 2], [0]) for i in range(4)])
    assert stages["openvino"].runtime()["name"] == "openvino"
    assert stages["openvino"].runner.runtime.exports == 1
    chosen = stages["auto"].runtime()
    assert chosen["name"] == "openvino" and chosen["asked"] == "auto" and set(chosen["trial_seconds"]) == {"torch", "openvino"}
    assert stages["auto"].runner.runtime.exports == 1 and stages["auto"].report()["totals"]["steps"] > 0
    assert stages["openvino"].report()["totals"]["steps"] > 0
    plain = Enhancer(StageConfig(model=str(tiny_weights), scale=2, runner=RunnerConfig(device="cpu", runtime="torch")))
    assert (plain.process(frames[3:8][None], [5], [0]) - outs["torch"][3]).abs().max() > 1e-4  # adaptation changed the output
    assert (outs["openvino"] - outs["torch"]).abs().max().item() < 1e-5
    assert (outs["auto"] - outs["torch"]).abs().max().item() < 1e-5


def test_cli_refuses_an_unknown_runtime(tmp_path, clip):
    r = CliRunner().invoke(main, ["enhance", str(clip.path), str(tmp_path / "o.mp4"), "--runtime", "tensorrt"])
    assert r.exit_code == 2 and "tensorrt" in r.output and not (tmp_path / "o.mp4").exists()


def test_vapoursynth_runtime_option(tiny_weights):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import vapoursynth as vs

    from vsr_pipeline.vapoursynth import enhance

    core = vs.core
    blank = core.std.BlankClip(width=20, height=16, format=vs.RGBS, length=3, color=[0.2, 0.5, 0.7])
    outs = [np.asarray(enhance(blank, model=str(tiny_weights), scale=2, runtime=rt).get_frame(1)[0]).copy() for rt in ("torch", "onnxruntime")]
    assert outs[0].shape == (32, 40) and np.abs(outs[0] - outs[1]).max() < 1e-5
    with pytest.raises(vs.Error, match="runtime"):
        enhance(blank, model=str(tiny_weights), scale=2, runtime="tensorrt")


def test_which_adaptation_output_passes_go_through_the_runtime(tiny_weights):
    """auto leaves per-frame methods' output to their objective (torch) and puts online's output passes through the runner."""
    from vsr_pipeline.adapt.config import AdaptConfig
    from vsr_pipeline.config import RunnerConfig, StageConfig
    from vsr_pipeline.enhancer import Enhancer

    def stage(method, runtime="auto", **kw):
        return Enhancer(StageConfig(model=str(tiny_weights), scale=2, runner=RunnerConfig(device="cpu", runtime=runtime, **kw),
                                    adapt=AdaptConfig(method=method)))

    s = stage("consistency")
    assert s.adapter.context.forward is None
    assert s.runtime()["name"] == "torch" and "own forward passes" in s.runtime()["note"]
    online = stage("online")
    assert online.adapter.context.forward == online.runner.run and online.runner.adapted
    assert online.runtime() == {"name": None, "asked": "auto"}  # the runner's trial decides at the first output pass
    assert stage("online", runtime="torch").adapter.context.forward is None  # plain torch: the adapter's own pass
    assert stage("consistency", runtime="torch").adapter.context.forward is None
    assert stage("consistency", tile=16).adapter.context.forward is not None
    pytest.importorskip("onnxruntime")
    explicit = stage("consistency", runtime="onnxruntime")
    assert explicit.adapter.context.forward == explicit.runner.run
    assert explicit.runtime()["name"] == "onnxruntime"
    fast_online = stage("online", runtime="onnxruntime")
    assert fast_online.adapter.context.forward == fast_online.runner.run and fast_online.runner.adapted
