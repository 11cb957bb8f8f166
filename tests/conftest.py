import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clips import make_clip  # noqa: E402


@pytest.fixture
def clip(tmp_path):
    """A 10-frame 64x48 H.264 mp4 at 25 fps."""
    return make_clip(tmp_path / "in.mp4")


@pytest.fixture
def tiny_weights(tmp_path):
    """A tiny five-frame ×2 VSRNet (8 features, 1 block, seed 0) saved as safetensors: a model file for CLI/API runs."""
    import torch

    from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

    torch.manual_seed(0)
    path = tmp_path / "tiny-x2.safetensors"
    save_vsrnet(VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)), path, name="tiny-x2")
    return path


@pytest.fixture(autouse=True)
def _forget_runtime_trials():
    """Each test decides ``--runtime auto`` afresh (a process remembers trials: vsr_pipeline.runtimes.auto)."""
    from vsr_pipeline.runtimes import auto

    auto.forget()
    yield
    auto.forget()
