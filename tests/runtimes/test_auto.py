"""``--runtime auto``: the stated rule on fake timings, and the runner keeping what it chose."""

from __future__ import annotations

import pytest
import torch
from runtime_nets import ConvStack

import vsr_pipeline.runner as runner_mod
from vsr_pipeline.config import RUNTIMES, RunnerConfig
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.runtimes import NAMES, build_runtime
from vsr_pipeline.runtimes.auto import MARGIN, TOLERANCE, choose, trial


def test_choose_fastest_matching_runtime():
    same = {"torch": 0.0, "onnxruntime": 1e-6, "openvino": 2e-6}
    assert choose({"torch": 1.0, "onnxruntime": 0.7, "openvino": 0.8}, same) == "onnxruntime"
    assert choose({"torch": 1.0, "onnxruntime": 0.8, "openvino": 0.7}, same) == "openvino"
    assert choose({"torch": 0.5, "onnxruntime": 0.7, "openvino": 0.8}, same) == "torch"


def test_choose_never_a_runtime_within_the_margin():
    same = {"torch": 0.0, "onnxruntime": 0.0}
    assert choose({"torch": 1.0, "onnxruntime": MARGIN + 0.01}, same) == "torch"  # faster, but by less than noise
    assert choose({"torch": 1.0, "onnxruntime": MARGIN}, same) == "onnxruntime"
    assert choose({"torch": 1.0, "onnxruntime": 1.0}, same) == "torch"


def test_choose_skips_a_runtime_with_other_output():
    seconds = {"torch": 1.0, "onnxruntime": 0.5, "openvino": 0.8}
    assert choose(seconds, {"torch": 0.0, "onnxruntime": 2 * TOLERANCE, "openvino": TOLERANCE}) == "openvino"
    assert choose(seconds, {"torch": 0.0, "onnxruntime": 1e-2, "openvino": 1e-2}) == "torch"
    assert choose(seconds, {"torch": 0.0}) == "torch"  # no difference measured: not the same output


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeRuntime:
    """Costs ``cost`` fake seconds per pass; output torch's plus ``offset``."""

    def __init__(self, name, cost, clock, offset=0.0, broken=False):
        self.name, self.cost, self.clock, self.offset, self.broken = name, cost, clock, offset, broken
        self.calls = []

    def run(self, x, net=None):
        if self.broken:
            raise RuntimeError("unsupported operator")
        self.clock.now += self.cost
        self.calls.append(net)
        return x[:, 2].repeat_interleave(2, -1).repeat_interleave(2, -2) * 0.5 + self.offset


def _fake(monkeypatch, costs, offsets=None, broken=()):
    from vsr_pipeline.runtimes import auto

    clock = FakeClock()
    monkeypatch.setattr(auto.time, "perf_counter", clock)
    monkeypatch.setattr(auto, "MIN_PIXELS", 0)
    fakes = {n: FakeRuntime(n, c, clock, (offsets or {}).get(n, 0.0), n in broken) for n, c in costs.items()}
    monkeypatch.setattr(runner_mod, "usable", lambda device, half=False: list(costs))
    monkeypatch.setattr(runner_mod, "build_runtime", lambda name, model, device, half=False: fakes[name])
    return fakes


def test_runner_auto_picks_by_trial_and_keeps_it(monkeypatch):
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8})
    r = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    assert r.report() == {"name": None, "asked": "auto"}
    x = torch.rand(1, 5, 3, 6, 7)
    y = r(x)
    assert torch.allclose(y, fakes["torch"].run(x).clamp(0, 1))  # the batch's result is torch's
    report = r.report()
    assert report["name"] == "onnxruntime" and report["asked"] == "auto"
    assert report["trial_seconds"] == pytest.approx({"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8})
    calls = {n: len(f.calls) for n, f in fakes.items()}
    r(x)
    r(x)
    assert len(fakes["onnxruntime"].calls) == calls["onnxruntime"] + 2  # chosen once, then used
    assert len(fakes["torch"].calls) == calls["torch"]  # torch is not asked again


def test_runner_auto_leaves_out_mismatching_and_failing_runtimes(monkeypatch):
    _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.5, "openvino": 0.6}, offsets={"onnxruntime": 0.01}, broken={"openvino"})
    r = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    r(torch.rand(1, 5, 3, 6, 7))
    report = r.report()
    assert report["name"] == "torch"
    assert report["trial_max_difference"]["onnxruntime"] == pytest.approx(0.01, rel=1e-3)
    assert "unsupported operator" in report["failed"]["openvino"]


def test_runner_auto_times_adapted_weights_when_adapting(monkeypatch):
    """With online adaptation most output passes use tuned copies: the trial feeds weights the same way."""
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.5})
    model = ConvStack(2)
    r = runner_mod.Runner(model, 2, RunnerConfig(device="cpu"), adapted=True)
    r(torch.rand(1, 5, 3, 6, 7))
    assert fakes["onnxruntime"].calls and all(net is model for net in fakes["onnxruntime"].calls)
    r2 = runner_mod.Runner(model, 2, RunnerConfig(device="cpu"))
    fakes["onnxruntime"].calls.clear()
    r2(torch.rand(1, 5, 3, 6, 7))
    assert fakes["onnxruntime"].calls and all(net is None for net in fakes["onnxruntime"].calls)


def test_small_frames_stay_on_torch_without_a_trial(monkeypatch):
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.1})
    from vsr_pipeline.runtimes import auto

    monkeypatch.setattr(auto, "MIN_PIXELS", 6 * 8)
    r = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    r(torch.rand(1, 5, 3, 6, 7))  # 42 px: under the limit
    assert r.report()["name"] == "torch" and "no trial" in r.report()["note"]
    assert not fakes["onnxruntime"].calls
    r2 = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    r2(torch.rand(1, 5, 3, 6, 8))  # 48 px: a trial
    assert r2.report()["name"] == "onnxruntime"


def test_trial_reference_failure_is_raised():
    with pytest.raises(RuntimeError, match="boom"):
        trial({"torch": lambda: (_ for _ in ()).throw(RuntimeError("boom"))})


def test_names_agree_and_bad_names_are_refused():
    assert NAMES == RUNTIMES
    with pytest.raises(ConfigError, match="--runtime must be one of"):
        RunnerConfig(runtime="tensorrt")
    with pytest.raises(ConfigError, match="Unknown runtime"):
        build_runtime("auto", ConvStack(2), torch.device("cpu"))


def test_missing_package_is_one_sentence(monkeypatch):
    from vsr_pipeline import runtimes

    monkeypatch.setattr(runtimes, "installed", lambda name: name == "torch")
    with pytest.raises(ConfigError, match=r"pip install 'vsr-pipeline\[onnx\]'"):
        build_runtime("onnxruntime", ConvStack(2), torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"vsr-pipeline\[openvino\]"):
        build_runtime("openvino", ConvStack(2), torch.device("cpu"))
    assert runtimes.usable(torch.device("cpu")) == ["torch"]


def test_half_is_torch_only():
    assert build_runtime("torch", ConvStack(2), torch.device("cpu")).name == "torch"
    pytest.importorskip("onnxruntime")
    with pytest.raises(ConfigError, match="--half works with --runtime torch only"):
        build_runtime("onnxruntime", ConvStack(2), torch.device("cpu"), half=True)
    from vsr_pipeline.runtimes import usable

    assert usable(torch.device("cpu"), half=True) == ["torch"]
