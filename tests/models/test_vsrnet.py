"""VSRNet: shapes, scales, MC-dropout switch, FLOP count, safetensors round-trip and bad files."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from torch.utils.flop_counter import FlopCounterMode

from vsr_pipeline.errors import ModelError, OutputError
from vsr_pipeline.models import base, entries, vsrnet
from vsr_pipeline.models.base import ModelEntry, VSRModel
from vsr_pipeline.models.vsrnet import (
    MCDropout,
    VSRNet,
    VSRNetConfig,
    flops_per_output_pixel,
    load_vsrnet,
    read_metadata,
    save_vsrnet,
)

TINY = VSRNetConfig(features=8, blocks=2)


def tiny(scale: int = 4, **kw) -> VSRNet:
    torch.manual_seed(0)
    net = VSRNet(VSRNetConfig(scale=scale, features=8, blocks=2, **kw))
    for p in net.tail.parameters():  # make the network differ visibly from bicubic
        torch.nn.init.normal_(p, std=0.1)
    return net.eval()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_and_info(scale):
    net = tiny(scale)
    out = net(torch.rand(2, 5, 3, 9, 13))
    assert out.shape == (2, 3, 9 * scale, 13 * scale)
    assert isinstance(net, VSRModel)
    assert (net.info.scale, net.info.frames, net.info.supports_dropout) == (scale, 5, True)


def test_other_output_scale_resizes_native_output():
    net = tiny(4)
    x = torch.rand(1, 5, 3, 10, 7)
    out3 = net(x, out_scale=3)
    assert out3.shape == (1, 3, 30, 21)
    out25 = net(x, out_scale=2.5)
    assert out25.shape == (1, 3, 25, math.ceil(17.5))
    assert torch.equal(net(x, out_scale=4), net(x))


def test_residual_over_bicubic_at_init():
    """A fresh network starts close to MATLAB bicubic of the centre frame (tail ~ 0)."""
    from vsr_pipeline.degrade.resize import imresize

    torch.manual_seed(0)
    net = VSRNet(TINY).eval()
    x = torch.rand(1, 5, 3, 8, 8)
    assert torch.allclose(net(x), imresize(x[:, 2], scale=4), atol=0.05)


def test_wrong_window_shape_is_refused():
    with pytest.raises(ValueError, match="expects windows"):
        tiny()(torch.rand(1, 3, 3, 8, 8))


def test_mc_dropout_off_is_identity_and_on_is_stochastic():
    net = tiny()
    x = torch.rand(1, 5, 3, 12, 12)
    ref = net(x)
    assert net.mc_dropout is None
    net.set_mc_dropout(0.0)
    assert torch.equal(net(x), ref)
    y = torch.rand(4, 8, 6, 6)
    assert MCDropout()(y) is y  # free when off: the very same tensor
    net.set_mc_dropout(0.3)
    a, b = net(x), net(x)  # eval mode, still stochastic
    assert not torch.equal(a, b)
    assert not torch.equal(a, ref)
    net.set_mc_dropout(None)
    assert torch.equal(net(x), ref)
    with pytest.raises(ValueError):
        net.set_mc_dropout(1.5)


def test_flop_count_matches_torch_counter():
    cfg = VSRNetConfig(features=16, blocks=3)
    net = VSRNet(cfg)
    h, w = 12, 20
    with FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 5, 3, h, w))
    conv = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    out_px = 16 * h * w
    counted = flops_per_output_pixel(cfg) * out_px
    # our count adds biases, skips and the bicubic on top of the convolutions' multiply-adds
    assert conv <= counted <= conv * 1.05


def test_safetensors_round_trip(tmp_path):
    net = tiny(3, frames=5)
    path = tmp_path / "net.safetensors"
    save_vsrnet(net, path, name="mine", extra={"note": "hello"})
    meta = read_metadata(path)
    assert meta["vsrpipe.arch"] == "vsrnet" and meta["note"] == "hello"
    assert VSRNetConfig.from_json(meta["vsrpipe.config"]) == net.config
    back = load_vsrnet(path)
    assert back.info.name == "mine" and back.config == net.config
    x = torch.rand(1, 5, 3, 8, 8)
    assert torch.equal(back(x), net(x))
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"]  # no temporary file left (hidden ones included)
    assert path.stat().st_mode & 0o077 != 0  # published with the umask's permissions, not safetensors' 0600


@pytest.mark.parametrize("error", [RuntimeError("writer died"), OSError(28, "No space left on device")])
def test_failed_save_leaves_no_file(tmp_path, monkeypatch, error):
    import safetensors.torch

    def half_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a safetensors file")
        raise error

    monkeypatch.setattr(safetensors.torch, "save_file", half_save)
    expected = OutputError if isinstance(error, OSError) else RuntimeError
    path = tmp_path / "net.safetensors"
    with pytest.raises(expected):  # a new file: nothing at its path
        save_vsrnet(tiny(), path)
    assert list(tmp_path.iterdir()) == []
    path.write_bytes(b"old")  # an existing file is left as it was
    with pytest.raises(expected) as err:
        save_vsrnet(tiny(), path)
    if expected is OutputError:
        assert str(path) in str(err.value) and "disk is full" in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["net.safetensors"] and path.read_bytes() == b"old"


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_vsrnet(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_vsrnet(bad)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelError, match="not a vsrnet file"):
        load_vsrnet(other)
    good = tmp_path / "x2.safetensors"
    save_vsrnet(tiny(2), good)
    with pytest.raises(ModelError, match="x2 network, but x4 was expected"):
        load_vsrnet(good, expected_scale=4)
    # right metadata, wrong tensors
    state = {k: v for k, v in tiny(2).state_dict().items() if not k.startswith("tail")}
    save_file(state, str(tmp_path / "broken.safetensors"), metadata=read_metadata(good))
    with pytest.raises(ModelError, match="does not match its vsrnet config"):
        load_vsrnet(tmp_path / "broken.safetensors")


def test_shipped_entries(monkeypatch, tmp_path):
    for entry in (entries.VSRNET_X4, entries.VSRNET_X4_GAN):
        assert isinstance(entry, ModelEntry)
        assert (entry.scale, entry.frames, entry.supports_dropout) == (4, 5, True)
    # a missing shipped file is one clear ModelError
    monkeypatch.setattr(base, "shipped_weights", lambda filename: tmp_path / filename)
    with pytest.raises(ModelError, match="missing from the installation"):
        entries.VSRNET_X4.build()
    # a present one builds, named after the entry
    save_vsrnet(tiny(4), tmp_path / "vsrnet-x4.safetensors", name="whatever")
    net = entries.VSRNET_X4.build()
    assert net.info.name == "vsrnet-x4" and not net.training
    # a x2 file in the x4 slot is refused
    save_vsrnet(tiny(2), tmp_path / "vsrnet-x4-gan.safetensors")
    with pytest.raises(ModelError, match="x4 was expected"):
        entries.VSRNET_X4_GAN.build()


def test_load_shipped_hands_the_loader_a_path_or_says_the_file_is_missing(monkeypatch, tmp_path):
    from vsr_pipeline.models import community

    monkeypatch.setattr(base, "shipped_weights", lambda filename: tmp_path / filename)
    for build in (vsrnet.build_shipped, community.build_shipped):  # both shipped builders go through load_shipped
        with pytest.raises(ModelError, match=r"model 'm' \(m.bin\) are missing from the installation"):
            build("m.bin", "m", 4)
    (tmp_path / "m.bin").write_bytes(b"x")
    seen = []
    assert base.load_shipped("m.bin", "m", lambda path: seen.append(path) or "built") == "built"
    assert seen == [tmp_path / "m.bin"]
    torch.manual_seed(0)
    from spandrel.architectures.Compact import Compact

    torch.save(Compact(num_feat=8, num_conv=2, upscale=4).state_dict(), tmp_path / "c.pth")
    model = community.build_shipped("c.pth", "compact-mine", 4)
    assert (model.info.name, model.info.scale) == ("compact-mine", 4)
    with pytest.raises(ModelError, match="but x2 was expected"):
        community.build_shipped("c.pth", "compact-mine", 2)


def test_real_shipped_weights_load_if_present():
    for entry in (entries.VSRNET_X4, entries.VSRNET_X4_GAN):
        if not vsrnet.shipped_weights(entry.build.args[0]).is_file():
            pytest.skip("shipped weights not built yet")
        net = entry.build()
        assert net(torch.rand(1, 5, 3, 8, 8)).shape == (1, 3, 32, 32)
