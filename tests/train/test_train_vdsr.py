"""The pre-upsampling ``vdsr`` network: trained with ``--arch vdsr``, exported as a
self-describing safetensors file whose tensors are a 1× DnCNN, and run by ``--model`` at
whatever scale is asked for (bicubic first, then the residual CNN)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from vsr_pipeline.cli.train import train as train_cmd
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError, ModelError
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.models.vdsr import VDSR, load_vdsr, save_vdsr
from vsr_pipeline.runner import Runner
from vsr_pipeline.train.data import DataConfig, WindowSampler
from vsr_pipeline.train.loop import network_for, train
from vsr_pipeline.train.nets import load_init

from tests.train.test_train_loop import stills, tiny_config


ARCH = dict(arch="vdsr", blocks=8)  # the shallowest vdsr spandrel still recognises


def test_vdsr_learns_and_exports_a_model_any_scale(tmp_path):
    cfg = tiny_config(tmp_path / "run", steps=40, ckpt_every=40, **ARCH)
    torch.manual_seed(cfg.seed)
    fresh = network_for(cfg)
    assert isinstance(fresh, VDSR) and fresh.info.frames == 1 and fresh.info.scale == 2 and fresh.info.any_scale
    lr, hr = WindowSampler(DataConfig(scale=2, frames=1, lr_patch=8, clips=(), stills=()), seed=5,
                           clips=[], stills=stills()).sample(16)
    path = train(cfg, clips=[], stills=stills())
    assert path.name == "model.safetensors"
    native = load_model(str(path))
    assert isinstance(native, VDSR) and native.info.scale == 2 and native.trained_scale == 2 and not native.training
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(fresh.eval()(lr), hr).item()
        after = torch.nn.functional.mse_loss(native(lr), hr).item()
    assert after < 0.8 * before
    at3 = load_model(str(path), scale=3)  # the same weights after a bicubic x3
    assert at3.info.scale == 3 and at3.trained_scale == 2
    x = torch.rand(1, 1, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(at3(x), native.net(imresize(x[:, 0], out_shape=(30, 36))))
    # the tensors alone are a 1x DnCNN to spandrel
    import spandrel
    from safetensors.torch import load_file

    desc = spandrel.ModelLoader().load_from_state_dict(load_file(str(path)))
    assert desc.architecture.name == "DnCNN" and desc.scale == 1


def test_vdsr_is_a_residual_on_the_bicubic_upscale_and_runs_in_the_runner(tmp_path):
    net = VDSR(features=4, convs=8, scale=3)
    torch.nn.init.zeros_(net.net.model[-1].weight)
    torch.nn.init.zeros_(net.net.model[-1].bias)
    x = torch.rand(2, 5, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(net(x), imresize(x[:, 2], scale=3))  # centre frame, bicubic, nothing subtracted
    save_vdsr(net, tmp_path / "z.safetensors", name="zero")
    model = load_model(str(tmp_path / "z.safetensors"), scale=3)
    assert model.info.name == "z"
    out = Runner(model, 3)(x[:1])
    assert out.shape == (1, 3, 30, 36)
    assert torch.allclose(out, imresize(x[:1, 2], scale=3).clamp(0, 1), atol=1 / 255)
    with pytest.raises(ValueError, match="at least 8"):
        VDSR(features=4, convs=7, scale=2)


def test_vdsr_bad_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.0.weight": torch.zeros(4, 3, 3, 3)}, str(tmp_path / "short.safetensors"),
              metadata={"vsrpipe.arch": "vdsr", "vsrpipe.config": '{"features": 4, "convs": 8, "scale": 4}'})
    with pytest.raises(ModelError, match="does not match its vdsr config"):
        load_model(str(tmp_path / "short.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_vdsr(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"vsrpipe.arch": "vsrnet"})
    with pytest.raises(ModelError, match="not a vdsr file"):
        load_vdsr(tmp_path / "other.safetensors")


def test_vdsr_init_and_cli_refuses_shallow(tmp_path):
    train(tiny_config(tmp_path / "a", steps=2, ckpt_every=2, **ARCH), clips=[], stills=stills())
    a = load_vdsr(tmp_path / "a" / "model.safetensors")
    net = VDSR(features=8, convs=8, scale=2)
    load_init(net, tmp_path / "a" / "model.safetensors")
    assert all(torch.equal(net.net.state_dict()[k], v) for k, v in a.net.state_dict().items())
    with pytest.raises(ConfigError, match="8 features and 8 convolutions; this run trains 8 and 9"):
        load_init(VDSR(features=8, convs=9, scale=2), tmp_path / "a" / "model.safetensors")
    res = CliRunner().invoke(train_cmd, ["--arch", "vdsr", "--blocks", "7", "--out", str(tmp_path / "z"), "--steps", "1",
                                         "--no-progress"])
    assert res.exit_code != 0 and "--blocks >= 8" in res.output
    assert not (tmp_path / "z" / "model.safetensors").exists()
