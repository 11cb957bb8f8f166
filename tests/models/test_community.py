"""Loading users' weights files: spandrel community models, our own vsrnet files, bad files."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.community import SpandrelModel, load_weights_file
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet


@pytest.fixture
def compact_state():
    torch.manual_seed(0)
    return Compact(num_feat=8, num_conv=2, upscale=4).state_dict()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_compact_loads_and_runs(tmp_path, compact_state, suffix):
    path = tmp_path / f"my-compact{suffix}"
    if suffix == ".pth":
        torch.save(compact_state, path)
    else:
        save_file(compact_state, str(path))
    model = load_weights_file(path)
    assert isinstance(model, SpandrelModel)
    assert (model.info.name, model.info.scale, model.info.frames, model.info.supports_dropout) == ("my-compact", 4, 1, False)
    out = model(torch.rand(2, 1, 3, 10, 13))  # (B, T=1, C, H, W): the runner's single-image window
    assert out.shape == (2, 3, 40, 52)
    assert model(torch.rand(1, 5, 3, 6, 7)).shape == (1, 3, 24, 28)  # centre frame of a full window


def test_esrgan_wrapped_state_dict_loads(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "esrgan.pth"
    torch.save({"params_ema": ESRGAN(num_filters=8, num_blocks=1, scale=2).state_dict()}, path)
    model = load_weights_file(path)
    assert model.info.scale == 2
    assert model(torch.rand(1, 1, 3, 9, 11)).shape == (1, 3, 18, 22)


def test_gradients_flow_for_adaptation(tmp_path, compact_state):
    path = tmp_path / "c.pth"
    torch.save(compact_state, path)
    model = load_weights_file(path)
    model(torch.rand(1, 1, 3, 8, 8)).mean().backward()
    assert any(p.grad is not None for p in model.parameters())


def test_vsrnet_file_loads_as_vsrnet(tmp_path):
    path = tmp_path / "ours.safetensors"
    save_vsrnet(VSRNet(VSRNetConfig(features=8, blocks=1)), path)
    model = load_weights_file(path)
    assert isinstance(model, VSRNet) and model.info.name == "ours" and model.info.frames == 5


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path, compact_state):
    marker = tmp_path / "EXECUTED"
    path = tmp_path / "evil.pth"
    torch.save({**compact_state, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(ModelError, match=r"refused: it pickles code or objects \(\w+\.system\)"):
        load_weights_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"\x00garbage" * 10), "corrupt or not a PyTorch weights file"),
        (lambda p: p.write_bytes(b"garbage" * 10), "is a text file, not a PyTorch weights file; it cannot be read as a model"),
        (lambda p: torch.save({"foo.weight": torch.zeros(3, 3)}, p), "unknown architecture"),
        (lambda p: torch.save([torch.zeros(1)], p), "not a state dict"),
    ],
)
def test_bad_pth_files(tmp_path, make, message):
    path = tmp_path / "bad.pth"
    make(path)
    with pytest.raises(ModelError, match=message) as err:
        load_weights_file(path)
    assert "bad.pth" in str(err.value)


def test_truncated_and_corrupt_files(tmp_path, compact_state):
    good = tmp_path / "good.pth"
    torch.save(compact_state, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_weights_file(cut)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_weights_file(bad)


def test_missing_unsupported_and_wrong_scale(tmp_path, compact_state):
    with pytest.raises(ModelError, match="does not exist"):
        load_weights_file(tmp_path / "missing.pth")
    other = tmp_path / "weights.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match="unsupported type"):
        load_weights_file(other)
    path = tmp_path / "c.pth"
    torch.save(compact_state, path)
    with pytest.raises(ModelError, match="x4 RealESRGAN Compact model, but x2 was expected"):
        load_weights_file(path, expected_scale=2)
