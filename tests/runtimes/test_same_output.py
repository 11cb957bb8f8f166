"""Every runtime gives torch's output within 1e-5 on [0, 1]: built-in models and spandrel architectures, trained and adapted weights."""

from __future__ import annotations

import pytest
import torch
from runtime_nets import ConvStack, perturbed

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner

TOL = 1e-5
EXPORTED = ["onnxruntime", "openvino"]


def _need(runtime):
    pytest.importorskip("onnx")
    pytest.importorskip({"onnxruntime": "onnxruntime", "openvino": "openvino"}[runtime])


def _runner(model, runtime, scale=None, **kw):
    return Runner(model, scale or model.info.scale, RunnerConfig(device="cpu", runtime=runtime, **kw))


@pytest.mark.parametrize("runtime", EXPORTED)
def test_trained_and_adapted_weights_match_torch(runtime, any_model):
    _need(runtime)
    name, model = any_model
    x = torch.rand(2, 5, 3, 14, 18)
    fast, ref = _runner(model, runtime), _runner(model, "torch")
    assert (fast(x) - ref(x)).abs().max().item() < TOL, name
    if next(model.parameters(), None) is None:
        return  # bicubic: no weights to adapt
    tuned = perturbed(model)
    want = ref.run(tuned, x)
    assert (want - ref(x)).abs().max().item() > 1e-3  # the adapted copy really differs
    assert (fast.run(tuned, x) - want).abs().max().item() < TOL, name
    assert fast.runtime.exports == 1  # the adapted copy ran on the same export: its weights are inputs
    with torch.no_grad():  # adapt further in place (online carries one copy): the new weights are used, still no export
        for p in tuned.parameters():
            p.mul_(0.9)
    assert (fast.run(tuned, x) - ref.run(tuned, x)).abs().max().item() < TOL
    assert fast.runtime.exports == 1


@pytest.mark.parametrize("runtime", EXPORTED)
def test_non_native_scale_is_resized_above_the_runtime(runtime):
    _need(runtime)
    model = ConvStack(2)
    x = torch.rand(1, 5, 3, 11, 13)
    fast, ref = _runner(model, runtime, scale=3), _runner(model, "torch", scale=3)
    y = fast(x)
    assert y.shape == (1, 3, 33, 39)
    assert (y - ref(x)).abs().max().item() < TOL


@pytest.mark.parametrize("runtime", EXPORTED)
def test_frame_sizes_and_tiles_export_once_per_shape(runtime):
    _need(runtime)
    model = ConvStack(3)
    fast, ref = _runner(model, runtime), _runner(model, "torch")
    for _ in range(3):  # frames of two sizes, alternating: one export each, none per frame
        for h, w in ((12, 20), (17, 9)):
            x = torch.rand(1, 5, 3, h, w)
            assert (fast(x) - ref(x)).abs().max().item() < TOL
    assert fast.runtime.exports == 2
    tiled, whole = _runner(model, runtime, tile=16, tile_pad=4), _runner(model, "torch")
    x = torch.rand(1, 5, 3, 37, 45)
    assert (tiled(x) - whole(x)).abs().max().item() < TOL
    first = tiled.runtime.exports
    assert 1 < first <= 9  # a few tile shapes (inner, right, bottom, corner, …)
    for _ in range(2):
        x = torch.rand(1, 5, 3, 37, 45)
        assert (tiled(x) - whole(x)).abs().max().item() < TOL
    assert tiled.runtime.exports == first


@pytest.mark.parametrize("runtime", EXPORTED)
def test_mc_dropout_copy_runs_in_torch(runtime):
    """A network with dropout hooks or MC-dropout switched on is not what was exported: it runs in torch."""
    _need(runtime)
    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig

    torch.manual_seed(0)
    model = VSRNet(VSRNetConfig(scale=2, features=8, blocks=2)).eval()
    fast = _runner(model, runtime)
    x = torch.rand(1, 5, 3, 10, 12)
    fast(x)
    noisy = perturbed(model)
    noisy.set_mc_dropout(0.5)
    torch.manual_seed(3)
    a = fast.run(noisy, x)
    torch.manual_seed(3)
    b = noisy(x).clamp(0, 1)
    assert torch.equal(a, b)


def test_runtimes_share_one_export_until_the_weights_change(monkeypatch):
    _need("onnxruntime")
    _need("openvino")
    from vsr_pipeline.runtimes import export

    calls = []
    real = export._export
    monkeypatch.setattr(export, "_export", lambda model, shape: calls.append(shape) or real(model, shape))
    model = ConvStack(2)
    x = torch.rand(1, 5, 3, 9, 10)
    a, b = _runner(model, "onnxruntime"), _runner(model, "openvino")
    a(x), b(x)
    assert len(calls) == 1
    with torch.no_grad():
        model.body[0].bias.add_(0.5)  # the trained weights changed in place: the constants must follow
    c = _runner(model, "onnxruntime")
    assert (c(x) - _runner(model, "torch")(x)).abs().max().item() < TOL
    assert len(calls) == 2


@pytest.mark.parametrize("runtime", EXPORTED)
def test_parameter_missing_from_the_export_runs_adapted_copies_in_torch(runtime):
    """A parameter the export drops (unused here) cannot be fed by name: adapted copies fall back to torch, still exact."""
    _need(runtime)
    model = ConvStack(2)
    model.unused = torch.nn.Parameter(torch.zeros(3))
    x = torch.rand(1, 5, 3, 9, 10)
    fast, ref = _runner(model, runtime), _runner(model, "torch")
    assert (fast(x) - ref(x)).abs().max().item() < TOL
    tuned = perturbed(model)
    assert (fast.run(tuned, x) - ref.run(tuned, x)).abs().max().item() < 1e-6
    entry = next(iter(fast.runtime._cache.values()))
    assert entry["export"].weights_as_inputs is None and "inputs" not in entry
