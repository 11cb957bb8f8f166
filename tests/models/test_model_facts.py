"""What spandrel knows about a model (fp16 support, tiling, size requirements) reaches ModelInfo and the runner."""

from __future__ import annotations

import logging

import pytest
import torch
from spandrel import ImageModelDescriptor, ModelLoader, ModelTiling, SizeRequirements
from spandrel.architectures.Compact import Compact, CompactArch
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.SwinIR import SwinIR
from torch import nn

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.base import ModelInfo
from vsr_pipeline.models.community import SpandrelModel
from vsr_pipeline.runner import Runner, check_model_options


def _spandrel(module: nn.Module, name: str) -> SpandrelModel:
    """``module``'s state dict recognised by spandrel, wrapped as the loader wraps it."""
    return SpandrelModel(ModelLoader().load_from_state_dict(module.state_dict()), name=name)


@pytest.fixture
def swinir() -> SpandrelModel:
    """A tiny x2 SwinIR (2k parameters): spandrel marks it fp32-only, tiling discouraged, at least 16 px."""
    torch.manual_seed(0)
    net = SwinIR(img_size=16, embed_dim=6, depths=[1], num_heads=[1], window_size=4, mlp_ratio=1.0, upscale=2, upsampler="pixelshuffledirect")
    return _spandrel(net, "tiny-swinir")


@pytest.fixture
def compact() -> SpandrelModel:
    torch.manual_seed(0)
    return _spandrel(Compact(num_feat=8, num_conv=2, upscale=2), "tiny-compact")


class _Strict(nn.Module):
    """conv + PixelShuffle x2 that raises unless H and W are multiples of 4 and at least 12 (as some architectures do)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 12:
            raise ValueError(f"input {h}x{w} breaks the size requirements")
        return nn.functional.pixel_shuffle(self.conv(x), 2)


def _described(net: nn.Module, *, tiling: ModelTiling = ModelTiling.SUPPORTED, size: SizeRequirements | None = None) -> SpandrelModel:
    """``net`` in a real spandrel descriptor declaring ``tiling`` and ``size`` (no spandrel architecture declares INTERNAL yet)."""
    descriptor = ImageModelDescriptor(
        net, net.state_dict(), architecture=CompactArch(), purpose="SR", tags=[], supports_half=True, supports_bfloat16=True,
        scale=2, input_channels=3, output_channels=3, size_requirements=size, tiling=tiling,
    )
    return SpandrelModel(descriptor, name="described")


def test_spandrel_facts_reach_model_info(swinir, compact):
    assert (swinir.info.supports_half, swinir.info.tiling) == (False, "discouraged")
    assert (compact.info.supports_half, compact.info.tiling) == (True, "supported")
    assert _described(_Strict(), tiling=ModelTiling.INTERNAL).info.tiling == "internal"


def test_model_info_defaults_keep_every_option_and_reject_unknown_tiling():
    info = ModelInfo(name="m", scale=2)
    assert (info.supports_half, info.tiling) == (True, "supported")
    check_model_options(info, RunnerConfig(half=True, tile=64))  # a model that declares nothing keeps --half and --tile
    with pytest.raises(ValueError, match="tiling must be one of supported, discouraged, internal"):
        ModelInfo(name="m", scale=2, tiling="sometimes")


def test_half_on_fp32_only_model_is_refused_before_the_device_check(swinir, compact):
    """On this CPU-only machine --half alone fails on CUDA; the model's own refusal must come first, naming it."""
    with pytest.raises(ConfigError, match=r"^Model 'tiny-swinir' does not support fp16 inference .*; drop --half\.$"):
        Runner(swinir, 2, RunnerConfig(device="cpu", half=True))
    with pytest.raises(ConfigError, match="--half needs a CUDA device"):  # a model that supports fp16 meets the device check
        Runner(compact, 2, RunnerConfig(device="cpu", half=True))


def test_tile_on_self_tiling_model_is_refused():
    model = _described(_Strict(), tiling=ModelTiling.INTERNAL)
    with pytest.raises(ConfigError, match=r"^Model 'described' tiles its input itself, so --tile cannot be used with it; drop --tile\.$"):
        Runner(model, 2, RunnerConfig(device="cpu", tile=16))
    assert Runner(model, 2, RunnerConfig(device="cpu", runtime="torch"))(torch.rand(1, 1, 3, 16, 16)).shape == (1, 3, 32, 32)


def test_tile_on_discouraged_model_warns_and_tiles(swinir, caplog):
    x = torch.rand(1, 1, 3, 20, 24)
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.runner"):
        runner = Runner(swinir, 2, RunnerConfig(device="cpu", runtime="torch", tile=8, tile_pad=8))
    assert any("'tiny-swinir'" in r.getMessage() and "seams" in r.getMessage() for r in caplog.records)
    y = runner(x)  # tiles of 8 px with context are under SwinIR's 16 px minimum: the wrapper pads each
    assert y.shape == (1, 3, 40, 48) and bool(torch.isfinite(y).all())


def test_supported_tiling_does_not_warn(compact, caplog):
    with caplog.at_level(logging.WARNING, logger="vsr_pipeline.runner"):
        Runner(compact, 2, RunnerConfig(device="cpu", runtime="torch", tile=8, tile_pad=8))
    assert not caplog.records


def test_tiles_off_the_size_requirements_give_the_whole_frame_result():
    """Odd frames and edge tiles (12, 13, 5 px ...) are padded to the model's minimum and multiple, then cropped back."""
    model = _described(_Strict(), size=SizeRequirements(minimum=12, multiple_of=4))
    x = torch.rand(1, 1, 3, 21, 29)
    whole = Runner(model, 2, RunnerConfig(device="cpu", runtime="torch"))(x)
    tiled = Runner(model, 2, RunnerConfig(device="cpu", runtime="torch", tile=8, tile_pad=8))(x)
    assert tiled.shape == whole.shape == (1, 3, 42, 58)
    assert (tiled - whole).abs().max().item() < 1e-6


def test_tile_contexts_start_on_the_models_pixel_grid():
    """A pixel-unshuffle network (x2 Real-ESRGAN layout, multiple_of 4) groups pixels in 2×2 blocks: tiles that started
    off that grid (17 px tiles) would be grouped differently from the whole frame (measured: 2.5e-2 apart); aligned, they match."""
    torch.manual_seed(0)
    model = _spandrel(ESRGAN(in_nc=12, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2), "unshuffle-x2")
    assert (model.info.scale, model.info.multiple_of) == (2, 4)
    x = torch.rand(1, 1, 3, 30, 33)  # tiles at 0 and 17: the second one's context would start at 1
    whole = Runner(model, 2, RunnerConfig(device="cpu", runtime="torch"))(x)
    tiled = Runner(model, 2, RunnerConfig(device="cpu", runtime="torch", tile=17, tile_pad=16))(x)
    assert (tiled - whole).abs().max().item() < 1e-5


def test_run_report_carries_the_model_facts_and_the_runs_half_and_tile(tmp_path):
    """``--report``'s ``model_info``: what the model file declares (read by spandrel) and the tile the run used."""
    import json

    from click.testing import CliRunner
    from clips import make_clip

    from vsr_pipeline.cli import main

    torch.manual_seed(0)
    net = SwinIR(img_size=16, embed_dim=6, depths=[1], num_heads=[1], window_size=4, mlp_ratio=1.0, upscale=2, upsampler="pixelshuffledirect")
    weights = tmp_path / "tiny-swinir.pth"
    torch.save(net.state_dict(), weights)
    c = make_clip(tmp_path / "in.mp4", n=2, size=(40, 32))
    report = tmp_path / "run.json"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "out.mkv"), "-s", "2", "--model", str(weights),
                                  "--tile", "24", "--tile-pad", "8", "--runtime", "torch", "--report", str(report)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    facts = json.loads(report.read_text())["model_info"]
    assert facts["name"] == "tiny-swinir" and facts["scale"] == 2 and facts["frames"] == 1
    assert (facts["supports_half"], facts["tiling"], facts["multiple_of"]) == (False, "discouraged", 1)
    assert (facts["half"], facts["tile"], facts["tile_pad"]) == (False, 24, 8)
    whole = tmp_path / "whole.json"
    r = CliRunner().invoke(main, ["enhance", str(c.path), str(tmp_path / "whole.mkv"), "-s", "2", "--model", str(weights),
                                  "--runtime", "torch", "--report", str(whole)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (json.loads(whole.read_text())["model_info"]["tile"], json.loads(whole.read_text())["model_info"]["tile_pad"]) == (0, 0)
