"""Issue 14, item 13: ``--device cuda --half`` with every ``--adapt`` method.

The runner keeps the model's fp32 master weights (adaptation steps tune fp32 copies) and
runs inference — the plain model's fp16 copy, or an adapted copy under fp16 autocast — in
half precision. These tests need CUDA and are skipped without it (marker ``gpu``).
"""

import pytest
import torch

from clips import make_clip, read_back
from vsr_pipeline import api
from vsr_pipeline.adapt import registry
from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.config import RunnerConfig, StageConfig
from vsr_pipeline.enhancer import Enhancer
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

METHOD_OPTIONS = {
    "none": {},
    "consistency": dict(max_steps=2),
    "masked": dict(max_steps=2, mc_passes=3),
    "online": dict(steps_per_frame=2, crop=8),
    "internal": dict(max_steps=2),
}


def tiny_net(seed: int = 0) -> VSRNet:
    torch.manual_seed(seed)
    return VSRNet(VSRNetConfig(scale=2, features=8, blocks=2)).eval()


def test_every_method_is_covered():
    assert set(METHOD_OPTIONS) == set(registry.NAMES)


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
@pytest.mark.parametrize("tile", [0, 16])
def test_half_matches_fp32_with_every_method(method, tile):
    torch.manual_seed(1)
    x = torch.rand(2, 5, 3, 24, 32)
    adapt = AdaptConfig(method=method, degradation="gauss:sigma=1.0", **METHOD_OPTIONS[method]) if method != "none" else AdaptConfig()
    outs = {}
    for half in (False, True):
        runner = RunnerConfig(device="cuda", half=half, tile=tile)
        stage = Enhancer(StageConfig(scale=2, runner=runner, adapt=adapt), model=tiny_net())
        outs[half] = stage.process(x, [0, 1], [0, 0])
        assert all(p.dtype == torch.float32 for p in stage.model.parameters())  # fp32 master weights
        if method != "none":
            totals = stage.report()["totals"]
            assert totals["frames"] == 2 and totals["steps"] > 0 and totals["fallbacks"] == 0
    assert outs[True].dtype == torch.float32 and torch.isfinite(outs[True]).all()
    assert outs[True].shape == outs[False].shape == (2, 3, 48, 64)
    mse = (outs[True] - outs[False]).pow(2).mean().item()
    assert mse < 1e-4, f"half and fp32 outputs differ too much (MSE {mse:.2e})"


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_cli_options_device_cuda_half_end_to_end(tmp_path, method):
    c = make_clip(tmp_path / "in.mp4", n=4, size=(32, 24))
    weights = tmp_path / "tiny-x2.safetensors"
    save_vsrnet(tiny_net(), weights, name="tiny-x2")
    opts = dict(METHOD_OPTIONS[method], adapt=method, degradation="gauss:sigma=1.0") if method != "none" else {}
    r = api.enhance(c.path, tmp_path / "out.mkv", model=str(weights), scale=2, device="cuda", half=True, **opts)
    assert r.frames == 4 and r.device.startswith("cuda")
    assert len(read_back(tmp_path / "out.mkv")["pts"]) == 4
