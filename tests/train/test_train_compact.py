"""Training the single-image SRVGGNetCompact (``--arch compact``): it learns, exports a plain
state dict that spandrel loads as a community model, resumes, and refuses mismatched files."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vsr_pipeline.cli.train import train as train_cmd
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.train.data import DataConfig, WindowSampler
from vsr_pipeline.train.loop import export_checkpoint, network_for, train
from vsr_pipeline.train.nets import CompactNet, load_init

from tests.train.test_train_loop import stills, tiny_config


def compact_config(out, **kw):
    return tiny_config(out, arch="compact", blocks=2, **kw)


def test_compact_learns_and_exports_a_spandrel_checkpoint(tmp_path):
    cfg = compact_config(tmp_path / "run", steps=30, ckpt_every=30)
    torch.manual_seed(cfg.seed)
    fresh = network_for(cfg)
    assert isinstance(fresh, CompactNet)
    probe_lr, probe_hr = WindowSampler(DataConfig(scale=2, frames=1, lr_patch=8, clips=(), stills=()), seed=5,
                                       clips=[], stills=stills()).sample(16)
    assert probe_lr.shape[1] == 1
    path = train(cfg, clips=[], stills=stills())
    assert path.name == "model.pth" and (tmp_path / "run" / "model-step000030.pth").is_file()
    state = torch.load(path, weights_only=True)
    assert all(k.startswith("body.") for k in state) and state["body.0.weight"].shape == (8, 3, 3, 3)
    loaded = load_model(str(path))  # through spandrel, like any downloaded checkpoint
    assert loaded.architecture == "RealESRGAN Compact"
    assert loaded.info.scale == 2 and loaded.info.frames == 1
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(fresh.eval()(probe_lr), probe_hr).item()
        after = torch.nn.functional.mse_loss(loaded(probe_lr), probe_hr).item()
        trained = CompactNet(scale=2, features=8, convs=2)
        trained.net.load_state_dict(state)
        assert torch.equal(trained(probe_lr), loaded(probe_lr))  # spandrel's model is the trained one
    assert after < 0.8 * before


def test_compact_windows_use_the_centre_frame():
    net = CompactNet(scale=2, features=4, convs=1).eval()
    x = torch.rand(2, 3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net.net(x[:, 1]))
        assert torch.equal(net(x[:, 1]), net.net(x[:, 1]))


def test_compact_resume_and_init(tmp_path):
    straight = compact_config(tmp_path / "a", steps=6, ckpt_every=3)
    train(straight, clips=[], stills=stills())
    train(compact_config(tmp_path / "b", steps=3, ckpt_every=3), clips=[], stills=stills())
    train(compact_config(tmp_path / "b", steps=6, ckpt_every=3), resume=True, clips=[], stills=stills())
    a = torch.load(tmp_path / "a" / "model.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # --init from the .pth export starts where that run ended
    net = CompactNet(scale=2, features=8, convs=2)
    load_init(net, tmp_path / "a" / "model.pth")
    assert all(torch.equal(net.net.state_dict()[k], a[k]) for k in a)
    load_init(net, tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(net.net.state_dict()[k], b[k]) for k in b)
    with pytest.raises(ConfigError, match="holds a vsrnet"):
        load_init(net, tmp_path / "x.safetensors")


def test_compact_gan_from_l1_init(tmp_path):
    data = DataConfig(scale=2, lr_patch=16, clips=(), stills=())
    train(compact_config(tmp_path / "l1", loss="l1", steps=2, ckpt_every=2, data=data), clips=[], stills=stills())
    cfg = compact_config(tmp_path / "gan", loss="gan", steps=2, ckpt_every=2, log_every=1, d_features=8,
                         init=str(tmp_path / "l1" / "model.pth"), data=data)
    path = train(cfg, clips=[], stills=stills())
    records = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()]
    assert {"d_loss", "perc", "adv", "pix"} <= set(records[0])
    assert load_model(str(path)).info.scale == 2


def test_compact_export_only_and_cli_messages(tmp_path):
    out = tmp_path / "run"
    train(compact_config(out, steps=1, ckpt_every=1), clips=[], stills=stills())
    dest = export_checkpoint(out / "checkpoint.pt", tmp_path / "w.pth")
    assert torch.equal(torch.load(dest, weights_only=True)["body.0.weight"],
                       torch.load(out / "model.pth", weights_only=True)["body.0.weight"])
    with pytest.raises(ConfigError, match=r"exported as \.pth"):
        export_checkpoint(out / "checkpoint.pt", tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()
    runner = CliRunner()
    res = runner.invoke(train_cmd, ["--out", str(out), "--export-only", str(tmp_path / "cli.pth")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli.pth").is_file()
    res = runner.invoke(train_cmd, ["--arch", "compact", "--blocks", "0", "--out", str(tmp_path / "z"), "--steps", "1",
                                    "--no-progress"])
    assert res.exit_code != 0 and "--blocks >= 1" in res.output


def test_failed_compact_export_leaves_no_file(tmp_path, monkeypatch):
    from vsr_pipeline.train import nets

    def half_save(obj, f, *a, **kw):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("writer died")

    monkeypatch.setattr(nets.torch, "save", half_save)
    cfg = compact_config(tmp_path / "run")
    with pytest.raises(RuntimeError, match="writer died"):
        nets.save_export(network_for(cfg), tmp_path / "model.pth", name="m", extra={})
    assert list(tmp_path.iterdir()) == []
