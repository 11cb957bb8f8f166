"""``--runtime auto``: the stated rule on fake timings, and the runner keeping what it chose."""

from __future__ import annotations

import pytest
import torch
from runtime_nets import ConvStack

import vsr_pipeline.runner as runner_mod
from vsr_pipeline.config import RUNTIMES, RunnerConfig
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.runtimes import NAMES, build_runtime
from vsr_pipeline.runtimes.auto import MARGIN, ROUNDS, TOLERANCE, choose, trial


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
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8}, offsets={"onnxruntime": 5e-6})
    r = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    assert r.report() == {"name": None, "asked": "auto"}
    x = torch.rand(1, 5, 3, 6, 7)
    y = r(x)
    assert torch.equal(y, fakes["onnxruntime"].run(x).clamp(0, 1))  # the batch's result is the chosen runtime's
    assert not torch.equal(y, fakes["torch"].run(x).clamp(0, 1))
    report = r.report()
    assert report["name"] == "onnxruntime" and report["asked"] == "auto"
    assert report["trial_seconds"] == pytest.approx({"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8})
    calls = {n: len(f.calls) for n, f in fakes.items()}
    r(x)
    r(x)
    assert len(fakes["onnxruntime"].calls) == calls["onnxruntime"] + 2  # chosen once, then used
    assert len(fakes["torch"].calls) == calls["torch"]  # torch is not asked again


def test_runner_auto_leaves_out_mismatching_and_failing_runtimes(monkeypatch):
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.5, "openvino": 0.6}, offsets={"onnxruntime": 0.01}, broken={"openvino"})
    r = runner_mod.Runner(ConvStack(2), 2, RunnerConfig(device="cpu"))
    r(torch.rand(1, 5, 3, 6, 7))
    report = r.report()
    assert report["name"] == "torch"
    assert report["trial_max_difference"]["onnxruntime"] == pytest.approx(0.01, rel=1e-3)
    assert len(fakes["onnxruntime"].calls) == 1 and "onnxruntime" not in report["trial_seconds"]  # other output: not timed
    assert len(fakes["torch"].calls) == 1 + ROUNDS
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


MISMATCH = ("Check 'versions_compatible' failed at src/bindings/python/src/pyopenvino/pyopenvino.cpp:99:\n"
            "OpenVINO Python version (2026.4.1-22982) mismatches with OpenVINO Runtime library version (2026.4.1-1).")


def _openvino_fails(monkeypatch, message):
    import builtins
    import sys

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError(message)
        return real(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", fake)


def test_openvino_that_cannot_load_is_one_sentence_at_build(monkeypatch):
    """vs-mlrt's OpenVINO plugin loaded first: the package's version check refuses; said at build, naming the way out."""
    pytest.importorskip("openvino")
    _openvino_fails(monkeypatch, MISMATCH)
    with pytest.raises(ConfigError) as err:
        build_runtime("openvino", ConvStack(2), torch.device("cpu"))
    text = str(err.value)
    assert "vapoursynth-mlrt-ov" in text and "import openvino before vapoursynth" in text
    assert "--runtime onnxruntime or torch" in text and "mismatches" in text and "\n" not in text
    _openvino_fails(monkeypatch, "libopenvino.so.2641: cannot open shared object file")
    with pytest.raises(ConfigError, match=r"cannot open shared object file\)\. Reinstall it, or use --runtime onnxruntime") as err:
        build_runtime("openvino", ConvStack(2), torch.device("cpu"))
    assert "vs-mlrt" not in str(err.value)


def test_auto_leaves_out_an_openvino_that_cannot_load(monkeypatch):
    """The real runner and runtimes: auto runs on without OpenVINO and the report says why it was left out."""
    pytest.importorskip("openvino")
    from vsr_pipeline.runtimes import auto, usable

    monkeypatch.setattr(auto, "MIN_PIXELS", 0)
    _openvino_fails(monkeypatch, MISMATCH)
    assert "openvino" in usable(torch.device("cpu"))  # installed: only loading it fails
    model = ConvStack(2)
    r = runner_mod.Runner(model, 2, RunnerConfig(device="cpu"))
    x = torch.rand(1, 5, 3, 8, 10)
    y = r(x)
    report = r.report()
    assert "vapoursynth-mlrt-ov" in report["failed"]["openvino"] and "openvino" not in report["trial_seconds"]
    assert torch.allclose(y, model(x).clamp(0, 1), atol=1e-5)


def test_a_process_decides_once_per_network_shape_and_threads(monkeypatch):
    """A second runner of the same weights and frame size skips the trial; other weights, sizes or threads do not."""
    fakes = _fake(monkeypatch, {"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8})
    model = ConvStack(2)
    x = torch.rand(1, 5, 3, 6, 7)
    runner_mod.Runner(model, 2, RunnerConfig(device="cpu"))(x)
    calls = {n: len(f.calls) for n, f in fakes.items()}
    again = runner_mod.Runner(model, 2, RunnerConfig(device="cpu"))
    y = again(x)
    assert {n: len(f.calls) - calls[n] for n, f in fakes.items()} == {"torch": 0, "onnxruntime": 1, "openvino": 0}
    assert torch.allclose(y, fakes["onnxruntime"].run(x).clamp(0, 1))
    report = again.report()
    assert report["name"] == "onnxruntime" and "earlier trial" in report["note"]
    assert report["trial_seconds"] == pytest.approx({"torch": 1.0, "onnxruntime": 0.6, "openvino": 0.8})

    def trials_again(runner, batch):
        before = len(fakes["openvino"].calls)
        runner(batch)
        return len(fakes["openvino"].calls) > before

    other = ConvStack(2)
    with torch.no_grad():
        other.load_state_dict(model.state_dict())
        next(other.parameters()).view(-1)[0] += 1e-3
    assert trials_again(runner_mod.Runner(other, 2, RunnerConfig(device="cpu")), x)  # other weights
    assert trials_again(runner_mod.Runner(model, 2, RunnerConfig(device="cpu")), torch.rand(1, 5, 3, 6, 8))  # other size
    assert trials_again(runner_mod.Runner(model, 2, RunnerConfig(device="cpu"), adapted=True), x)  # weights as inputs
    assert trials_again(runner_mod.Runner(model, 2, RunnerConfig(device="cpu", tile=16, tile_pad=2)), x)  # tiled passes
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert trials_again(runner_mod.Runner(model, 2, RunnerConfig(device="cpu")), x)
    finally:
        torch.set_num_threads(threads)
    assert not trials_again(runner_mod.Runner(model, 2, RunnerConfig(device="cpu")), x)  # still remembered


def test_remembered_trials_are_bounded(monkeypatch):
    from vsr_pipeline.runtimes import auto

    monkeypatch.setattr(auto, "REMEMBERED", 2)
    for i in range(3):
        auto.remember(("k", i), auto.Choice("openvino"))
    assert auto.recall(("k", 0)) is None and auto.recall(("k", 2)).runtime == "openvino"
    assert auto.recall(("k", 1)).note.startswith("decided by an earlier trial")
