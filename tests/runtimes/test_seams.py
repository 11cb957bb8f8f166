"""Tiles are cut above the runtime: a model whose receptive radius equals the pad shows any missing pixel of context."""

from __future__ import annotations

import pytest
import torch
from runtime_nets import ConvStack

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner

PAD = 5  # ConvStack(PAD): five 3×3 convolutions, receptive radius exactly 5 LR px


def _runtimes():
    names = ["torch"]
    for name in ("onnxruntime", "openvino"):
        try:
            __import__(name)
            __import__("onnx")
            names.append(name)
        except ImportError:
            pass
    return names


def _max_diff(runtime, tile, pad, x):
    model = ConvStack(PAD)
    whole = Runner(model, 2, RunnerConfig(device="cpu", runtime="torch"))(x)
    tiled = Runner(model, 2, RunnerConfig(device="cpu", runtime=runtime, tile=tile, tile_pad=pad))(x)
    assert tiled.shape == whole.shape
    return (tiled - whole).abs().max().item()


@pytest.mark.parametrize("runtime", _runtimes())
@pytest.mark.parametrize("tile", [8, 13, 16])
def test_pad_equal_to_receptive_radius_is_seamless(runtime, tile):
    torch.manual_seed(4)
    x = torch.rand(1, 5, 3, 29, 35)
    assert _max_diff(runtime, tile, PAD, x) < 1e-5


def test_one_pixel_less_context_shows():
    """The model really needs every pixel of the pad: one less and the seams differ (so the test above guards it)."""
    torch.manual_seed(4)
    x = torch.rand(1, 5, 3, 29, 35)
    assert _max_diff("torch", 13, PAD - 1, x) > 1e-4
