"""PSNR/SSIM against scikit-image, and offline loading of LPIPS and ST-LPIPS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsr_pipeline.errors import ConfigError
from vsr_pipeline.metrics import (
    PerceptualMetric,
    load_lpips,
    load_perceptual_metric,
    load_stlpips,
    psnr,
    rgb_to_y,
    ssim,
)

skm = pytest.importorskip("skimage.metrics")


def _pair(seed: int = 0, h: int = 40, w: int = 36) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    ref = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 9.0)], axis=-1) * 0.4 + 0.5
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    return ref, test  # (H, W, 3) in [0, 1]


def _y255(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr's Y channel in [0, 255], written out independently of the package."""
    return 16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]


def _sk_ssim(a: np.ndarray, b: np.ndarray, **kw) -> float:
    return skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kw
    )


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_y_matches_skimage(crop: int) -> None:
    ref, test = _pair()
    c = slice(crop, -crop) if crop else slice(None)
    expected = skm.peak_signal_noise_ratio(_y255(ref)[c, c], _y255(test)[c, c], data_range=255)
    assert abs(psnr(test, ref, crop=crop) - expected) < 1e-4


def test_psnr_rgb_matches_skimage() -> None:
    ref, test = _pair(1)
    expected = skm.peak_signal_noise_ratio(ref, test, data_range=1.0)
    assert abs(psnr(test, ref, y_channel=False) - expected) < 1e-4


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_y_matches_skimage(crop: int) -> None:
    ref, test = _pair(2)
    c = slice(crop, -crop) if crop else slice(None)
    expected = _sk_ssim(_y255(ref)[c, c], _y255(test)[c, c])
    assert abs(ssim(test, ref, crop=crop) - expected) < 1e-4


def test_ssim_rgb_matches_skimage() -> None:
    ref, test = _pair(3)
    expected = _sk_ssim(ref * 255, test * 255, channel_axis=-1)
    assert abs(ssim(test, ref, y_channel=False) - expected) < 1e-4


def test_tensor_batch_and_numpy_agree() -> None:
    pairs = [_pair(s) for s in range(3)]
    a = torch.stack([torch.from_numpy(t).permute(2, 0, 1) for t, _ in pairs]).float()  # (B, 3, H, W)
    b = torch.stack([torch.from_numpy(r).permute(2, 0, 1) for _, r in pairs]).float()
    for fn in (psnr, ssim):
        batch = fn(a, b, crop=2)
        assert isinstance(batch, torch.Tensor) and batch.shape == (3,)
        single = fn(a[1], b[1], crop=2)
        assert isinstance(single, float)
        assert abs(float(batch[1]) - single) < 1e-9
        assert abs(single - fn(pairs[1][1].astype(np.float32), pairs[1][0], crop=2)) < 1e-4


def test_uint8_and_data_range() -> None:
    ref, test = _pair(4)
    r8, t8 = (ref * 255).round().astype(np.uint8), (test * 255).round().astype(np.uint8)
    assert abs(psnr(t8, r8, data_range=255) - psnr(t8 / 255.0, r8 / 255.0)) < 1e-9
    with pytest.raises(ValueError, match="data_range=255"):
        psnr(t8, r8)


def test_y_of_white_and_black() -> None:
    rgb = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    assert torch.allclose(rgb_to_y(rgb).flatten(), torch.tensor([16 / 255, 235 / 255]))


def test_identical_images_and_bad_inputs() -> None:
    ref, _ = _pair()
    assert psnr(ref, ref) == math.inf
    assert abs(ssim(ref, ref) - 1.0) < 1e-12
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(ref, ref[:-1])
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(ref, ref, crop=20)
    with pytest.raises(ValueError, match="11×11"):
        ssim(ref[:10, :10], ref[:10, :10])


# --------------------------------------------------------------------------- LPIPS


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """An empty torch hub cache and a download function that fails the test if called."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path


def test_lpips_unavailable_without_weights(no_downloads) -> None:
    m = load_lpips()
    assert not m.available
    assert "alexnet-owt-7be5be79.pth" in m.reason and "no download" in m.reason
    assert m.name == "LPIPS (AlexNet)"
    img = torch.rand(3, 16, 16)
    with pytest.raises(ConfigError, match=r"LPIPS \(AlexNet\) is unavailable: backbone weights not found"):
        m(img, img)
    given = load_lpips(weights_path=no_downloads / "missing.pth")
    assert not given.available and "missing.pth" in given.reason


def test_lpips_loads_a_local_backbone_file(no_downloads) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None)
    # Only the convolutional part: LPIPS ignores the classifier, and it is 95% of the file.
    features = {k: v for k, v in alex.state_dict().items() if k.startswith("features.")}
    path = no_downloads / "my alexnet.pth"
    torch.save(features, path)
    m = load_lpips(weights_path=path)
    assert m.available, m.reason
    # The backbone holds exactly the file's weights.
    assert torch.equal(getattr(m._model.net.slice1, "0").weight, alex.features[0].weight)
    assert torch.equal(getattr(m._model.net.slice5, "10").bias, alex.features[10].bias)
    x = torch.rand(2, 3, 32, 32)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    d = m(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert m(x[0], x[0]) == pytest.approx(0.0, abs=1e-7)

    # The default location is torch's hub cache.
    hub = no_downloads / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(features, hub / "alexnet-owt-7be5be79.pth")
    assert load_lpips().available


def test_lpips_rejects_a_wrong_weights_file(no_downloads) -> None:
    path = no_downloads / "wrong.pth"
    torch.save({"foo": torch.zeros(1)}, path)
    m = load_lpips(weights_path=path)
    assert not m.available and "not a torchvision AlexNet state dict" in m.reason
    path.write_bytes(b"garbage")
    assert not load_lpips(weights_path=path).available


def test_stlpips_loads_offline(no_downloads) -> None:
    m = load_perceptual_metric("st-lpips")
    if not m.available:
        pytest.skip(m.reason)
    assert m.name == "ST-LPIPS (AlexNet)"
    x = torch.rand(1, 3, 64, 64)
    y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    assert m(x[0], x[0]) == pytest.approx(0.0, abs=1e-7)
    assert m(x, y)[0] > 0
    hwc = x[0].permute(1, 2, 0).numpy()  # (H, W, 3) numpy input gives a float
    assert m(hwc, hwc) == pytest.approx(0.0, abs=1e-7)


def test_perceptual_metric_lookup() -> None:
    assert isinstance(load_stlpips("squeeze"), PerceptualMetric)
    assert not load_stlpips("squeeze").available
    with pytest.raises(ConfigError, match="lpips or st-lpips"):
        load_perceptual_metric("dists")
