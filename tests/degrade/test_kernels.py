"""Kernels: shapes, normalisation, conventions, the ×4 composition property, file validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vsr_pipeline.degrade.kernels import (
    anisotropic_gaussian_kernel,
    compose_x4,
    disk_kernel,
    gaussian_kernel,
    load_kernel,
    normalize_kernel,
    random_kernel,
    save_kernel,
    stride_offset,
)
from vsr_pipeline.degrade.operator import blur
from vsr_pipeline.errors import ConfigError


def _moments(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre of mass (y, x) relative to the anchor, and the 2×2 covariance in (x, y) order."""
    h, w = k.shape
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=k.dtype) - h // 2, torch.arange(w, dtype=k.dtype) - w // 2, indexing="ij"
    )
    my, mx = (k * yy).sum(), (k * xx).sum()
    dx, dy = xx - mx, yy - my
    cov = torch.stack([torch.stack([(k * dx * dx).sum(), (k * dx * dy).sum()]),
                       torch.stack([(k * dx * dy).sum(), (k * dy * dy).sum()])])
    return torch.stack([my, mx]), cov


def test_gaussian_is_centred_normalised_with_given_sigma() -> None:
    k = gaussian_kernel(2.0)
    assert k.shape == (13, 13) and k.dtype == torch.float64
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    centre, cov = _moments(gaussian_kernel(1.5, 21))
    assert centre.abs().max() < 1e-12
    assert torch.allclose(cov, torch.eye(2, dtype=torch.float64) * 1.5**2, atol=1e-6)


def test_offset_moves_centre_down_right() -> None:
    centre, _ = _moments(gaussian_kernel(1.0, offset=stride_offset(4)))
    assert torch.allclose(centre, torch.tensor([1.5, 1.5], dtype=torch.float64), atol=1e-3)


def test_anisotropic_follows_div2krk_convention() -> None:
    # l1, l2 are the covariance eigenvalues (variances); theta is the l1 axis from +x towards +y.
    theta = math.pi / 6
    _, cov = _moments(anisotropic_gaussian_kernel(4.0, 1.0, theta, size=31))
    vals, vecs = torch.linalg.eigh(cov)
    assert torch.allclose(vals, torch.tensor([1.0, 4.0], dtype=torch.float64), atol=1e-4)
    major = vecs[:, 1] * torch.sign(vecs[0, 1])
    assert torch.allclose(major, torch.tensor([math.cos(theta), math.sin(theta)], dtype=torch.float64), atol=1e-4)


def test_disk_is_antialiased_pillbox() -> None:
    k = disk_kernel(2.0)
    assert k.shape == (5, 5)
    assert k[0, 0] == 0 and k[2, 2] == k.max()
    assert 0 < k[0, 1] < k[1, 1]  # edge pixels partially covered
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)


def test_random_kernel_is_reproducible_and_div2krk_like() -> None:
    a, b, c = random_kernel(7), random_kernel(7), random_kernel(8)
    assert a.shape == (11, 11)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isclose(a.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (a > 0).all()
    centre, _ = _moments(random_kernel(7, noise=0.0))
    # Aligned for ×2 stride sampling: centre ≈ anchor + 0.5 (truncation pulls it in slightly).
    assert torch.allclose(centre, torch.full((2,), 0.5, dtype=torch.float64), atol=0.1)


@pytest.mark.parametrize("k2", [random_kernel(1), random_kernel(2, size=13), normalize_kernel(torch.rand(4, 6))])
def test_compose_x4_equals_two_x2_steps(k2: torch.Tensor) -> None:
    x = torch.rand(2, 3, 96, 80, dtype=torch.float64)
    two_steps = blur(blur(x, k2, stride=2), k2, stride=2)
    k4 = compose_x4(k2)
    one_step = blur(x, k4, stride=4)
    assert one_step.shape == two_steps.shape == (2, 3, 24, 20)
    m = 6  # the two paths pad the border differently; compare away from it
    assert (one_step - two_steps)[..., m:-m, m:-m].abs().max() < 1e-12


def test_compose_x4_size_and_centre() -> None:
    k2 = random_kernel(3, noise=0.0)
    k4 = compose_x4(k2)
    assert k4.shape == (31, 31)
    c2, _ = _moments(k2)
    c4, _ = _moments(k4)
    # centre offsets compose as 2·c2 + c2: the ×2 alignment (0.5) becomes the ×4 one (1.5).
    assert torch.allclose(c4, 3 * c2, atol=1e-9)


def test_save_and_load_round_trip(tmp_path) -> None:
    k = random_kernel(4)
    p = save_kernel(k * 3.0, tmp_path / "k x4 -odd.npy")
    assert torch.allclose(load_kernel(p), k)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((3, 3, 3)), "must hold a 2-D array"),
        (np.ones(5), "must hold a 2-D array"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, -1.0], [2.0, -2.0]]), "sums to zero"),
        (np.zeros((3, 3)), "sums to zero"),
        (np.array([["a", "b"]]), "numeric array"),
    ],
)
def test_bad_kernel_files(tmp_path, array: np.ndarray, message: str) -> None:
    p = tmp_path / "bad.npy"
    np.save(p, array)
    with pytest.raises(ConfigError, match=message) as info:
        load_kernel(p)
    assert str(p) in str(info.value)


def test_missing_and_unreadable_kernel_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_kernel(tmp_path / "nope.npy")
    p = tmp_path / "text.npy"
    p.write_text("not an array")
    with pytest.raises(ConfigError, match="not a readable .npy"):
        load_kernel(p)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gaussian_kernel(0.0),
        lambda: gaussian_kernel(-1.0),
        lambda: gaussian_kernel(float("nan")),
        lambda: gaussian_kernel(1.0, size=4),
        lambda: disk_kernel(0),
        lambda: anisotropic_gaussian_kernel(1.0, 0.0, 0.0),
        lambda: anisotropic_gaussian_kernel(1.0, 1.0, float("inf")),
    ],
)
def test_bad_kernel_parameters(make) -> None:
    with pytest.raises(ConfigError):
        make()
