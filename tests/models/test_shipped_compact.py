"""The shipped compact-x4-gan: a Real-ESRGAN Compact checkpoint trained here, loaded through spandrel."""

from __future__ import annotations

import pytest
import torch

from photos import photo_crop, y_psnr
from vsr_pipeline.adapt.dropout import dropout_sites, with_mc_dropout
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.models.community import SpandrelModel, build_shipped
from vsr_pipeline.models.vsrnet import shipped_weights
from vsr_pipeline.errors import ModelError

pytestmark = pytest.mark.skipif(not shipped_weights("compact-x4-gan.pth").is_file(), reason="compact-x4-gan.pth is missing")


def test_it_is_a_plain_state_dict_spandrel_reads_as_compact():
    state = torch.load(shipped_weights("compact-x4-gan.pth"), map_location="cpu", weights_only=True)
    assert sorted({k.split(".")[0] for k in state}) == ["body"]
    assert state["body.0.weight"].shape == (64, 3, 3, 3)  # 64 features
    model = build_shipped("compact-x4-gan.pth", "compact-x4-gan", 4)
    assert isinstance(model, SpandrelModel) and model.architecture == "RealESRGAN Compact"
    assert (model.info.name, model.info.scale, model.info.frames) == ("compact-x4-gan", 4, 1)
    assert sum(p.numel() for p in model.parameters()) == 621_424
    with pytest.raises(ModelError, match="missing from the installation"):
        build_shipped("no-such.pth", "x", 4)
    with pytest.raises(ModelError, match="x4 .* but x2 was expected"):
        build_shipped("compact-x4-gan.pth", "compact-x4-gan", 2)


def test_it_hosts_mc_dropout_after_its_activations():
    model = build_shipped("compact-x4-gan.pth", "compact-x4-gan", 4)
    sites = dropout_sites(model)
    assert (sites.rule, sites.kind, len(sites.names)) == ("activations", "PReLU", 17)
    x = torch.rand(1, 1, 3, 16, 16)
    noisy = with_mc_dropout(model, 0.05)
    with torch.no_grad():
        a, b = noisy(x), noisy(x)
        assert not torch.equal(a, b)  # dropout is live
        assert torch.equal(model(x), model(x))  # the model itself stays deterministic


@pytest.mark.parametrize("name,y,x,size", [("camera", 64, 64, 128), ("coins", 40, 40, 192)])
def test_it_beats_bicubic_perceptually_on_a_photograph(name, y, x, size):
    """A GAN trades PSNR for texture: its ST-LPIPS distance must be far below bicubic's.

    Photographs that were not training stills, ×4 MATLAB bicubic, 8-bit. Measured: camera
    ST-LPIPS 0.052 vs bicubic 0.310 (Y-PSNR 30.73 vs 28.34 dB), coins 0.150 vs 0.547
    (25.82 vs 24.15 dB). The test asks for half of bicubic's distance and at most 1 dB less PSNR.
    """
    from vsr_pipeline.metrics import load_stlpips

    metric = load_stlpips("alex")
    if not metric.available:
        pytest.skip(metric.reason)
    hr = photo_crop(name, y, x, size)
    lr = imresize(hr, 0.25).clamp(0, 1).mul(255).round().div(255)
    model = build_shipped("compact-x4-gan.pth", "compact-x4-gan", 4)
    with torch.no_grad():
        sr = model(lr[None, None])[0].clamp(0, 1)
    bicubic = imresize(lr, 4).clamp(0, 1)
    d_sr, d_bic = float(metric(sr[None], hr[None])), float(metric(bicubic[None], hr[None]))
    assert d_sr < 0.5 * d_bic, (d_sr, d_bic)
    assert y_psnr(sr, hr) > y_psnr(bicubic, hr) - 1.0
