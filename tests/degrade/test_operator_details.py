"""The degradation operator in detail: every error message in full, odd kernel shapes, the caches.

Companion of test_operator.py (issue 18, mutation testing): the messages are checked word
for word because users read them, and the kernel shapes here (1×1, 2×2, even sizes, one
side wider than the image) take the branches the usual odd square kernels never reach.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel, disk_kernel, save_kernel, stride_offset
from vsr_pipeline.degrade.operator import VALID_FORMS, Degradation, blur, parse_degradation
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError


def _msg(spec: str, detail: str) -> str:
    return f"Invalid degradation spec '{spec}' ({detail}); valid forms are {VALID_FORMS}."


@pytest.mark.parametrize(
    "spec,detail",
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("gauss:sigma=2,down=nearest", "down must be bicubic or stride, not 'nearest'"),
        ("gauss:sigma=2, DOWN = Nearest ", "down must be bicubic or stride, not 'Nearest'"),
        ("bicubic:sigma=2", "'bicubic' takes no parameters"),
        ("Estimate:now", "'estimate' takes no parameters"),
        ("kernel:", "the kernel: form needs a file path"),
        ("kernel:   ", "the kernel: form needs a file path"),
        ("gaussian:sigma=2", "unknown kind 'gaussian'"),
        ("gauss:sigma", "'sigma' is not key=value"),
        ("gauss:=2", "'=2' is not key=value"),
        ("gauss:sigma= ", "'sigma=' is not key=value"),
        ("gauss:sigma=2,radius=3", "'gauss' has no parameter 'radius'"),
        ("gauss:sigma=2,SIGMA=3", "'sigma' is given twice"),
        ("gauss:sigma=abc", "sigma='abc' is not a number"),
        ("gauss:sigma=2=3", "sigma='2=3' is not a number"),
        ("gauss:sigma=2,size=4.5", "size must be an odd integer, got '4.5'"),
        ("aniso:l1=1,l2=2", "'aniso' needs theta"),
        ("aniso:", "'aniso' needs l1, l2, theta"),
        ("disk", "'disk' needs radius"),
        ("bicubic,down=stride", "plain bicubic has no kernel to sample with a stride"),
    ],
)
def test_parse_messages_in_full(spec: str, detail: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_degradation(spec, 4)
    want_spec = "bicubic,down=stride" if detail.startswith("plain bicubic") else spec
    assert str(err.value) == _msg(want_spec, detail)


def test_a_spec_that_is_not_a_string() -> None:
    with pytest.raises(ConfigError) as err:
        parse_degradation(None, 4)
    assert str(err.value) == _msg("None", "it is empty")


def test_direct_construction_messages() -> None:
    with pytest.raises(ConfigError) as err:
        Degradation("blur", 2)
    assert str(err.value) == _msg("blur", "unknown kind 'blur'")
    with pytest.raises(ConfigError) as err:
        Degradation("gauss", 2, params=(("sigma", 1.0),), down="nearest")
    assert str(err.value) == _msg("down=nearest", "down must be bicubic or stride, not 'nearest'")
    with pytest.raises(ConfigError) as err:
        Degradation("bicubic", 2, down="stride")
    assert str(err.value) == _msg("bicubic,down=stride", "plain bicubic has no kernel to sample with a stride")
    with pytest.raises(ConfigError) as err:
        Degradation("kernel", 2)
    assert str(err.value) == _msg("kernel:", "the kernel: form needs a file path")


def test_scale_is_stored_as_a_float() -> None:
    d = Degradation("bicubic", 2)
    assert type(d.scale) is float and d.scale == 2.0
    assert "scale=2.0" in repr(d)
    assert type(parse_degradation("gauss:sigma=1", 3).scale) is float


@pytest.mark.parametrize("down", ["bicubic", "stride"])
def test_named_kernels_get_size_and_offset(down: str) -> None:
    s = 3
    off = stride_offset(s) if down == "stride" else 0.0
    a = parse_degradation(f"aniso:l1=2,l2=0.5,theta=0.4,size=9,down={down}", s)
    assert torch.equal(a.kernel, anisotropic_gaussian_kernel(2.0, 0.5, 0.4, 9, offset=off))
    d = parse_degradation(f"disk:radius=1.5,size=7,down={down}", s)
    assert torch.equal(d.kernel, disk_kernel(1.5, 7, offset=off))
    assert a.kernel.shape == (9, 9) and d.kernel.shape == (7, 7)


def test_estimate_and_shape_messages() -> None:
    with pytest.raises(ConfigError) as err:
        parse_degradation("estimate", 2)(torch.rand(1, 3, 8, 8))
    assert str(err.value) == (
        "The degradation 'estimate' has no kernel yet: estimate it for the clip (e.g. with KernelGAN) before applying it."
    )
    with pytest.raises(ValueError) as err:
        parse_degradation("bicubic", 2)(torch.rand(8, 8))
    assert str(err.value) == "a degradation expects (..., C, H, W), got shape (8, 8)"
    with pytest.raises(ValueError) as err:
        blur(torch.rand(3, 8, 8), torch.ones(3, 3) / 9)
    assert str(err.value) == "blur expects (N, C, H, W), got shape (3, 8, 8)"


def _correlate_symmetric(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Direct correlation with MATLAB-symmetric padding, anchor (kh // 2, kw // 2)."""
    kh, kw = k.shape
    h, w = x.shape

    def idx(i, n):
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m

    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            out[i, j] = sum(
                k[a, b] * x[idx(i + a - kh // 2, h), idx(j + b - kw // 2, w)] for a in range(kh) for b in range(kw)
            )
    return out


@pytest.mark.parametrize("shape", [(2, 3), (3, 2), (1, 4), (4, 1), (2, 2), (1, 12), (12, 1)])
def test_blur_with_even_and_one_sided_kernels(shape) -> None:
    """An even side pads one more pixel before than after; a side longer than the image pads
    more than the image on one side only."""
    rng = np.random.default_rng(sum(shape))
    x = rng.random((5, 6))
    k = rng.random(shape)
    got = blur(torch.from_numpy(x)[None, None], torch.from_numpy(k))[0, 0].numpy()
    assert got.shape == x.shape
    assert np.abs(got - _correlate_symmetric(x, k)).max() < 1e-12


def test_blur_casts_the_kernel_to_the_image_dtype() -> None:
    x = torch.rand(1, 2, 6, 6)
    k = torch.rand(3, 3, dtype=torch.float64)
    y = blur(x, k)
    assert y.dtype == torch.float32
    assert torch.allclose(y.double(), blur(x.double(), k), atol=1e-6)


def test_tiny_and_rank_two_kernel_files_with_bicubic_down(tmp_path) -> None:
    x = torch.rand(1, 1, 12, 10, dtype=torch.float64)
    one = parse_degradation(f"kernel:{save_kernel(np.ones((1, 1)), tmp_path / 'one.npy')},down=bicubic", 2)
    assert one._factors is not None  # 1×1: trivially separable
    assert (one(x) - imresize(x, 0.5)).abs().max() < 1e-12
    k2 = np.array([[0.4, 0.1], [0.1, 0.4]])  # rank two
    two = parse_degradation(f"kernel:{save_kernel(k2, tmp_path / 'two.npy')},down=bicubic", 2)
    assert two._factors is None
    assert (two(x) - imresize(blur(x, two.kernel), 0.5)).abs().max() < 1e-12


def test_kernel_cache_is_per_dtype() -> None:
    """A float64 image after a float32 one must be blurred with the float64 kernel, not the cached float32 copy."""
    d = parse_degradation("disk:radius=1.3,down=stride", 2)
    x = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    d(x.float())
    assert (d(x) - blur(x, d.kernel, stride=2)).abs().max() < 1e-15
    # converted once per device/dtype and reused, not rebuilt on every call
    assert d._kernel_on(x.device, torch.float32) is d._kernel_on(x.device, torch.float32)
    g = parse_degradation("gauss:sigma=1.0", 2)
    assert g._fused_matrix(0, 16, x.device, torch.float32) is g._fused_matrix(0, 16, x.device, torch.float32)
