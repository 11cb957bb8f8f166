"""MATLAB-bicubic parity of ``imresize`` against resize-right (symmetric padding), and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.resize import imresize, output_size, resize_matrix

resize_right = pytest.importorskip("resize_right")
from resize_right import interp_methods  # noqa: E402


def _reference(img_hwc: np.ndarray, scale: float) -> np.ndarray:
    # resize-right matches MATLAB only with numpy input (np.pad has 'symmetric') and
    # pad_mode='symmetric'; numpy input resizes the first two axes.
    return resize_right.resize(
        img_hwc,
        scale_factors=scale,
        interp_method=interp_methods.cubic,
        antialiasing=True,
        pad_mode="symmetric",
    )


SCALES = [2, 3, 4, 0.5, 0.75, 1 / 2, 1 / 3, 1 / 4, 4 / 3]


@pytest.mark.parametrize("scale", SCALES)
def test_matches_resize_right(scale: float) -> None:
    rng = np.random.default_rng(1)
    # 24x36 and 12x48: every scale above maps them to whole output sizes.
    for h, w in [(24, 36), (12, 48)]:
        img = rng.random((h, w, 3))
        ref = _reference(img, scale)
        out = imresize(torch.from_numpy(img).permute(2, 0, 1), scale)  # (C, H', W')
        out_hwc = out.permute(1, 2, 0).numpy()
        assert out_hwc.shape == ref.shape
        assert np.abs(out_hwc - ref).max() < 1e-5


def test_batched_shapes_agree_with_unbatched() -> None:
    x = torch.rand(2, 3, 3, 12, 16, dtype=torch.float64)  # (B, T, C, H, W)
    y = imresize(x, 0.5)
    assert y.shape == (2, 3, 3, 6, 8)
    assert torch.allclose(y[1, 2], imresize(x[1, 2], 0.5))


def test_float32_close_to_float64() -> None:
    x = torch.rand(1, 3, 16, 20, dtype=torch.float64)
    y64 = imresize(x, 0.25)
    y32 = imresize(x.float(), 0.25)
    assert y32.dtype == torch.float32
    assert (y32.double() - y64).abs().max() < 1e-5


def test_output_size_is_matlab_ceil() -> None:
    assert output_size(10, 0.75) == 8  # ceil(7.5)
    assert output_size(12, 1 / 3) == 4  # no spurious 5 from rounding
    assert imresize(torch.rand(3, 10, 7), 0.75).shape == (3, 8, 6)
    assert imresize(torch.rand(3, 10, 7), out_shape=(5, 21)).shape == (3, 5, 21)
    assert imresize(torch.rand(3, 10, 7), (2, 0.5)).shape == (3, 20, 4)


def test_rows_sum_to_one_and_border_is_symmetric() -> None:
    m = resize_matrix(9, 3, 1 / 3)
    assert torch.allclose(m.sum(1), torch.ones(3, dtype=torch.float64))
    # A kernel much wider than the image still mirrors (period 2n) and sums to one.
    m = resize_matrix(3, 1, 1 / 8)
    assert torch.allclose(m.sum(1), torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("scale", [2, 3, 4 / 3])
def test_constant_survives_up_then_down(scale: float) -> None:
    x = torch.full((1, 3, 9, 12), 0.37, dtype=torch.float64)
    up = imresize(x, scale)
    down = imresize(up, 1 / scale, out_shape=x.shape[-2:])
    assert torch.allclose(up, torch.full_like(up, 0.37), atol=1e-12)
    assert torch.allclose(down, x, atol=1e-12)


def test_identity_at_scale_one() -> None:
    x = torch.rand(2, 3, 5, 6)
    assert torch.equal(imresize(x, 1.0), x)


@pytest.mark.parametrize("scale", [0.5, 2.0, 0.75])
def test_gradcheck(scale: float) -> None:
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale), (x,), fast_mode=True)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
    with pytest.raises(ValueError, match="scale or out_shape"):
        imresize(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="positive"):
        imresize(torch.zeros(4, 4), 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        imresize(torch.zeros(4), 2)
