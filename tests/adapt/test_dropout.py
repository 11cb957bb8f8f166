"""MC-dropout inserted by hooks into community architectures (tiny, random weights) and vsrnet."""

from __future__ import annotations

import pytest
import torch

from vsr_pipeline.adapt.adapter import Adapter
from vsr_pipeline.adapt.base import upscale
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.adapt.dropout import dropout_sites, with_mc_dropout
from vsr_pipeline.adapt.uncertainty import artifact_mask, variance_map
from vsr_pipeline.models.community import SpandrelModel
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig


def spandrel_model(arch: str) -> SpandrelModel:
    import spandrel
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    net = {
        "rrdb": lambda: ESRGAN(num_filters=8, num_blocks=3, scale=2),
        "compact": lambda: Compact(num_feat=8, num_conv=4, upscale=2),
        "swinir": lambda: SwinIR(img_size=16, embed_dim=12, depths=[2, 2], num_heads=[2, 2], window_size=4, upscale=2,
                                 upsampler="pixelshuffledirect"),
    }[arch]()
    descriptor = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
    return SpandrelModel(descriptor, name=f"tiny-{arch}")


EXPECTED = {"rrdb": ("blocks", "RRDB", 3), "compact": ("activations", "PReLU", 5), "swinir": ("blocks", "RSTB", 2)}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_sites_variance_and_mask_on_community_architectures(arch):
    model = spandrel_model(arch)
    sites = dropout_sites(model)
    rule, kind, count = EXPECTED[arch]
    assert (sites.rule, sites.kind, len(sites.names)) == (rule, kind, count)
    x = torch.rand(1, 5, 3, 16, 16)
    with torch.no_grad():
        plain = upscale(model, x, (32, 32))
        # p = 0: the hooked copy computes exactly what the model does; the model itself gets no hooks
        assert torch.equal(upscale(with_mc_dropout(model, 0.0), x, (32, 32)), plain)
        v = variance_map(model, x, (32, 32), passes=6, p=0.01, seed=1)
        assert torch.equal(upscale(model, x, (32, 32)), plain)
    assert v.shape == (1, 1, 32, 32) and float(v.max()) > 0
    mask = artifact_mask(v)
    assert mask.shape == (1, 1, 32, 32) and 0 < float(mask.mean()) < 1
    # seeded: the same map again
    assert torch.equal(variance_map(model, x, (32, 32), passes=6, p=0.01, seed=1), v)


def test_hooked_rate_scales_with_channels():
    model = spandrel_model("compact")  # 8 channels at the PReLU sites: p * 64 / 8
    net = with_mc_dropout(model, 0.01)
    seen = []
    for name in dropout_sites(model).names:
        dict(net.named_modules())[name].register_forward_hook(lambda m, i, o: seen.append(float((o == 0).float().mean())))
    torch.manual_seed(0)
    with torch.no_grad():
        net(torch.rand(1, 1, 3, 64, 64))
    # PReLU outputs are almost never exactly 0 unless dropped: about 8 % are (0.01 * 64 / 8)
    assert 0.05 < sum(seen) / len(seen) < 0.11


def test_vsrnet_keeps_its_own_dropout_layers():
    torch.manual_seed(0)
    model = VSRNet(VSRNetConfig(scale=2, features=8, blocks=2))
    assert dropout_sites(model).rule == "native"


@pytest.mark.parametrize("method", ["masked", "consistency"])
def test_spandrel_model_through_adaptation_changes_the_output(method):
    model = spandrel_model("compact")
    x = torch.rand(1, 5, 3, 16, 16)
    base = Adapter(model, 2, AdaptConfig()).process(x, [0], [0])
    opts = dict(max_steps=4, lr=1e-2, degradation="gauss:sigma=1.0")
    if method == "masked":
        opts.update(mc_passes=4, mc_dropout=0.01)
    adapter = Adapter(model, 2, AdaptConfig(method=method, **opts))
    out = adapter.process(x, [0], [0])
    record = adapter.report.frames[0]
    assert record.steps > 0 and not record.unchanged
    assert (out - base).abs().max().item() > 1e-5
    if method == "masked":
        assert 0 < record.mask_fraction < 1


# ncnn graphs: sites from the graph itself -------------------------------------------------

def _ncnn_residual_graph(folder, residual_adds: int, prelu: bool):
    """A tiny ncnn graph: conv (fused ReLU) → [PReLU] → ``residual_adds`` residual blocks (conv, conv, add)."""
    from ncnn_graphs import GraphWriter

    from vsr_pipeline.models.ncnn import read_graph

    w = GraphWriter(seed=3)

    def conv(name, bottom, top, cin, cout, act=""):
        w.layer("Convolution", name, [bottom], [top], f"0={cout} 1=3 4=1 5=1 6={cout * cin * 9} {act}")
        w.weights(cout * cin * 9)
        w.raw(cout)

    w.layer("Input", "input", [], ["in"])
    conv("head", "in", "h", 3, 8, "9=1")
    blob = "h"
    if prelu:
        w.layer("PReLU", "act", ["h"], ["p"], "0=8")
        w.raw(8)
        blob = "p"
    for b in range(residual_adds):
        w.layer("Split", f"split{b}", [blob], [f"s{b}a", f"s{b}b"])
        conv(f"b{b}c1", f"s{b}a", f"b{b}x", 8, 8, "9=1")
        conv(f"b{b}c2", f"b{b}x", f"b{b}y", 8, 8)
        w.layer("BinaryOp", f"add{b}", [f"b{b}y", f"s{b}b"], [f"r{b}"], "0=0")
        blob = f"r{b}"
    conv("tail", blob, "out", 8, 3)
    return read_graph(w.write(folder))


def test_an_ncnn_graph_declares_its_residual_additions(tmp_path):
    graph = _ncnn_residual_graph(tmp_path, residual_adds=3, prelu=True)
    sites = dropout_sites(graph)
    assert sites.rule == "declared" and sites.kind == "NcnnGraph"
    types = [graph.specs[int(name.split(".")[1])].type for name in sites.names]
    assert types == ["BinaryOp"] * 3  # each block's closing addition, nothing else


def test_an_ncnn_graph_with_one_addition_falls_back_to_its_activations(tmp_path):
    graph = _ncnn_residual_graph(tmp_path, residual_adds=1, prelu=True)
    sites = dropout_sites(graph)
    # the convolutions (each wrapping its fused activation) are layers, not blocks: the PReLU layer is the site
    assert sites.rule == "activations" and sites.kind == "PReLU"
    assert [graph.specs[int(n.split(".")[1])].type for n in sites.names] == ["PReLU"]


def test_mc_dropout_runs_on_an_ncnn_graph_whose_layers_return_tuples(tmp_path):
    graph = _ncnn_residual_graph(tmp_path, residual_adds=2, prelu=False)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        plain = graph(x)
        net = with_mc_dropout(graph, 0.2)
        torch.manual_seed(0)
        a = net(x)
        b = net(x)
    assert a.shape == plain.shape and not torch.equal(a, b) and not torch.equal(a, plain)
    assert torch.equal(graph(x), plain)  # the original graph is untouched (hooks go on a copy)
