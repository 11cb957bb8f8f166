"""The degradation operator: spec round-trip, conventions, shapes, gradients, bad specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.kernels import gaussian_kernel, random_kernel, save_kernel
from vsr_pipeline.degrade.operator import VALID_FORMS, Degradation, blur, parse_degradation
from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError


@pytest.fixture
def kernel_file(tmp_path):
    # A name with spaces, a comma and a leading dash must survive the spec grammar.
    return save_kernel(random_kernel(0, scale=4), tmp_path / "-my kernel, x4.npy")


SPECS = [
    "bicubic",
    "gauss:sigma=2.0",
    "gauss:sigma=1.25,size=9",
    "aniso:l1=3.5,l2=0.7,theta=-1.2",
    "disk:radius=2.0",
    "gauss:sigma=2.0,down=stride",
    "disk:radius=1.5,size=7,down=stride",
    "estimate",
    "estimate,down=bicubic",
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips(spec: str) -> None:
    d = parse_degradation(spec, 4)
    assert d.spec == spec
    assert parse_degradation(d.spec, d.scale) == d
    assert str(d) == spec


def test_kernel_spec_round_trips(kernel_file) -> None:
    for spec in [f"kernel:{kernel_file}", f"kernel:{kernel_file},down=bicubic"]:
        d = parse_degradation(spec, 4)
        assert d.spec == spec and parse_degradation(d.spec, 4) == d
        assert d.kernel.shape == (11, 11)


def test_specs_are_canonicalised() -> None:
    d = parse_degradation("  Gauss : sigma = 2 , down = bicubic ", 4)
    assert d.spec == "gauss:sigma=2.0"
    d = parse_degradation("aniso:theta=0.5,l2=1,l1=2", 2)
    assert d.spec == "aniso:l1=2.0,l2=1.0,theta=0.5"


def test_kinds_defaults_and_kernel_property(kernel_file) -> None:
    assert parse_degradation("bicubic", 4).kernel is None
    assert parse_degradation("estimate", 4).kernel is None
    g = parse_degradation("gauss:sigma=2.0", 4)
    assert g.down == "bicubic" and torch.allclose(g.kernel, gaussian_kernel(2.0))
    assert parse_degradation(f"kernel:{kernel_file}", 4).down == "stride"
    assert parse_degradation("estimate", 4).down == "stride"
    assert g.scale == 4.0


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "gaussian:sigma=2",
        "gauss",
        "gauss:",
        "gauss:sigma",
        "gauss:sigma=",
        "gauss:sigma=abc",
        "gauss:sigma=2,radius=3",
        "gauss:sigma=2,sigma=3",
        "gauss:sigma=2,size=4.5",
        "aniso:l1=1,l2=2",
        "disk:r=2",
        "bicubic:sigma=2",
        "estimate:now",
        "kernel:",
        "gauss:sigma=2,down=nearest",
        "bicubic,down=stride",
    ],
)
def test_malformed_specs_list_the_valid_forms(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_degradation(spec, 4)
    msg = str(info.value)
    assert msg.startswith("Invalid degradation spec")
    assert VALID_FORMS in msg
    assert "gauss:sigma=S" in msg and "kernel:PATH.npy" in msg and "down=stride" in msg


@pytest.mark.parametrize("spec", ["gauss:sigma=0", "gauss:sigma=-2", "disk:radius=nan", "gauss:sigma=2,size=4"])
def test_bad_parameter_values(spec: str) -> None:
    with pytest.raises(ConfigError, match="must be a positive|odd integer"):
        parse_degradation(spec, 4)


@pytest.mark.parametrize("scale", [1, 1.0, 0.5, 0, -2, float("inf"), float("nan")])
def test_scale_must_exceed_one(scale: float) -> None:
    with pytest.raises(ConfigError, match="greater than 1"):
        parse_degradation("bicubic", scale)


def test_non_integer_scale_needs_bicubic_down() -> None:
    d = parse_degradation("gauss:sigma=1.0", 4 / 3)
    x = torch.rand(1, 3, 16, 12)
    assert d(x).shape == (1, 3, 12, 9) == (1, 3, *d.lr_size(16, 12))
    with pytest.raises(ConfigError, match="integer scale"):
        parse_degradation("gauss:sigma=1.0,down=stride", 2.5)
    with pytest.raises(ConfigError, match="integer scale"):
        parse_degradation("estimate", 1.5)


def test_bad_kernel_file_through_spec(tmp_path) -> None:
    p = tmp_path / "flat.npy"
    np.save(p, np.ones((2, 2, 2)))
    with pytest.raises(ConfigError, match="2-D") as info:
        parse_degradation(f"kernel:{p}", 2)
    assert str(p) in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        parse_degradation(f"kernel:{tmp_path / 'missing.npy'}", 2)


def test_estimate_is_a_marker_until_resolved() -> None:
    d = parse_degradation("estimate", 2)
    assert not d.resolved and d.kernel is None
    with pytest.raises(ConfigError, match="no kernel yet"):
        d(torch.rand(1, 3, 8, 8))
    k = random_kernel(1)
    r = d.with_kernel(k * 2)
    assert r.resolved and torch.allclose(r.kernel, k)
    assert torch.allclose(r(torch.ones(1, 3, 8, 8)), torch.ones(1, 3, 4, 4))
    with pytest.raises(ConfigError, match="Only an 'estimate'"):
        parse_degradation("bicubic", 2).with_kernel(k)


def test_bicubic_is_matlab_imresize() -> None:
    x = torch.rand(2, 3, 24, 20, dtype=torch.float64)
    assert torch.equal(parse_degradation("bicubic", 4)(x), imresize(x, 1 / 4))


def test_stride_matches_scipy_correlate_and_div2krk_sampling(kernel_file) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    d = parse_degradation(f"kernel:{kernel_file}", 4)
    img = np.random.default_rng(0).random((37, 30))
    ref = ndimage.correlate(img, d.kernel.numpy(), mode="reflect")[::4, ::4]
    out = d(torch.from_numpy(img)[None])[0].numpy()
    assert out.shape == ref.shape == (10, 8)
    assert np.abs(out - ref).max() < 1e-12


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_stride_and_bicubic_downs_share_the_pixel_grid(scale: int) -> None:
    # A ramp survives any normalised symmetric blur; both downs must then sample it at the
    # same HR positions s*i + (s-1)/2 (the bicubic grid), which checks the stride offset.
    h, w = 12 * scale, 10 * scale
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    ramp = (0.3 * yy + 0.7 * xx)[None, None]  # (1, 1, H, W)
    a = parse_degradation("gauss:sigma=1.0", scale)(ramp)
    b = parse_degradation("gauss:sigma=1.0,down=stride", scale)(ramp)
    m = 3
    assert (a - b)[..., m:-m, m:-m].abs().max() < 1e-3


@pytest.mark.parametrize("spec", ["bicubic", "gauss:sigma=2.0", "disk:radius=2.0,down=stride", "aniso:l1=2,l2=1,theta=1"])
@pytest.mark.parametrize("hw", [(32, 24), (31, 25)])
def test_lr_size_and_windows(spec: str, hw: tuple[int, int]) -> None:
    d = parse_degradation(spec, 4)
    frames = torch.rand(2, 5, 3, *hw)  # (B, T, C, H, W)
    lr = d(frames)
    assert lr.shape == (2, 5, 3, *d.lr_size(*hw))
    assert torch.allclose(lr[1, 3], d(frames[1, 3][None])[0], atol=1e-6)
    assert d(frames[0, 0]).shape == (3, *d.lr_size(*hw))  # a single (C, H, W) frame


@pytest.mark.parametrize("spec", ["bicubic", "gauss:sigma=1.0", "disk:radius=1.0,down=stride"])
def test_gradients_flow(spec: str) -> None:
    d = parse_degradation(spec, 2)
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(d, (x,), fast_mode=True)


def test_gradients_flow_to_the_kernel() -> None:
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64)
    k = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda kk: blur(x, kk, stride=2), (k,), fast_mode=True)


def test_kernel_cache_follows_dtype() -> None:
    d = parse_degradation("gauss:sigma=1.0", 2)
    y32 = d(torch.rand(1, 3, 8, 8))
    y64 = d(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    assert y32.dtype == torch.float32 and y64.dtype == torch.float64


def test_direct_construction_is_validated() -> None:
    d = Degradation("gauss", 2, params=(("sigma", 1.0),))
    assert d == parse_degradation("gauss:sigma=1.0", 2)
    with pytest.raises(ConfigError):
        Degradation("blur", 2)


@pytest.mark.parametrize(("spec", "scale"), [("gauss:sigma=2.0", 4), ("gauss:sigma=0.8,size=9", 3), ("aniso:l1=2,l2=1,theta=0", 4 / 3)])
def test_separable_fast_path_equals_blur_then_imresize(spec: str, scale: float) -> None:
    d = parse_degradation(spec, scale)
    assert d._factors is not None  # rank-one kernels take the fused-matrix path
    x = torch.rand(2, 3, 29, 35, dtype=torch.float64)
    expected = imresize(blur(x, d.kernel), 1 / scale)
    assert (d(x) - expected).abs().max() < 1e-12


def test_non_separable_kernels_use_convolution() -> None:
    assert parse_degradation("disk:radius=2.0", 4)._factors is None
    assert parse_degradation("aniso:l1=2,l2=1,theta=0.5", 4)._factors is None


def test_symmetric_padding_wider_than_the_image() -> None:
    # A 13×13 kernel on a 4×5 image pads by more than the image: the mirror must repeat.
    x = torch.rand(1, 1, 4, 5, dtype=torch.float64)
    k = gaussian_kernel(2.0)
    ndimage = pytest.importorskip("scipy.ndimage")
    ref = ndimage.correlate(x[0, 0].numpy(), k.numpy(), mode="reflect")
    assert np.abs(blur(x, k)[0, 0].numpy() - ref).max() < 1e-12
