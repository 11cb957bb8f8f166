import pytest
import torch
from torch import nn

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError
from vsr_pipeline.models.base import ModelInfo
from vsr_pipeline.models.bicubic import Bicubic
from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner


class TinyVSR(nn.Module):
    """Five frames in, ×2 out; receptive radius 3 LR pixels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.info = ModelInfo(name="tiny", scale=2, frames=5)
        self.body = nn.Sequential(nn.Conv2d(15, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 12, 3, padding=1), nn.PixelShuffle(2))

    def forward(self, x):  # (B, 5, C, H, W) -> (B, C, 2H, 2W)
        b, t, c, h, w = x.shape
        return self.body(x.reshape(b, t * c, h, w)) + imresize(x[:, 2], scale=2)


@pytest.mark.parametrize("tile,pad", [(16, 4), (13, 5), (32, 8)])
def test_tiled_equals_untiled(tile, pad):
    x = torch.rand(2, 5, 3, 37, 45)
    whole = Runner(TinyVSR(), 2, RunnerConfig(device="cpu"))(x)
    tiled = Runner(TinyVSR(), 2, RunnerConfig(device="cpu", tile=tile, tile_pad=pad))(x)
    assert tiled.shape == whole.shape == (2, 3, 74, 90)
    assert (tiled - whole).abs().max().item() < 1e-4


def test_non_native_scale_resizes_output():
    x = torch.rand(1, 5, 3, 20, 30)
    y = Runner(TinyVSR(), 3, RunnerConfig(device="cpu"))(x)
    assert y.shape == (1, 3, 60, 90)
    y15 = Runner(TinyVSR(), 1.5, RunnerConfig(device="cpu"))(x)
    assert y15.shape == (1, 3, 30, 45)


def test_single_image_model_gets_centre_frame():
    x = torch.rand(1, 5, 3, 10, 12)
    y = Runner(Bicubic(2), 2, RunnerConfig(device="cpu"))(x)
    assert torch.allclose(y, imresize(x[:, 2], scale=2).clamp(0, 1), atol=1e-6)


def test_bad_runner_options():
    with pytest.raises(ConfigError, match="--half needs a CUDA"):
        Runner(Bicubic(2), 2, RunnerConfig(device="cpu", half=True))
    with pytest.raises(ConfigError, match="Unknown device"):
        Runner(Bicubic(2), 2, RunnerConfig(device="tpu:banana"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            Runner(Bicubic(2), 2, RunnerConfig(device="cuda"))


def test_inference_then_autograd():
    """Adaptation runs gradients after plain inference: cached resize matrices must allow it."""
    x = torch.rand(1, 5, 3, 11, 13)
    Runner(Bicubic(3), 3, RunnerConfig(device="cpu"))(x)  # fills the cache in inference mode
    lr = torch.rand(1, 3, 11, 13, requires_grad=True)
    imresize(lr, scale=3).sum().backward()
    assert lr.grad is not None and torch.isfinite(lr.grad).all()
