"""KernelGAN kernel estimation: networks, regularisers, ×4 kernel, fallbacks, caching, the CLI."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from clips import make_clip
from vsr_pipeline.cli import main
from vsr_pipeline.degrade.kernels import anisotropic_gaussian_kernel, compose_x4, gaussian_kernel
from vsr_pipeline.degrade.operator import blur
from vsr_pipeline.kernels import estimate as ke
from vsr_pipeline.kernels import kernelgan as kg
from vsr_pipeline.kernels import metrics as km
from vsr_pipeline.kernels.estimate import KernelEstimator
from vsr_pipeline.kernels.kernelgan import KernelGANConfig, estimate_kernel
from vsr_pipeline.kernels.kernelgan_nets import (
    DeepLinearGenerator,
    PatchDiscriminator,
    boundaries_loss,
    boundary_mask,
    centre_loss,
    sum_to_one_loss,
)
from vsr_pipeline.kernels.metrics import centre_of_mass, kernel_error, kernel_orientation

TINY = KernelGANConfig(iterations=12, seed=0)  # enough steps to exercise the loop, seconds to run


def _texture(size: int = 96, seed: int = 0) -> torch.Tensor:
    """(3, size, size) natural-looking detail: a crop of skimage's astronaut, or noise blobs."""
    try:
        from skimage.data import astronaut

        img = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255
        return img[:, 100 : 100 + size, 120 : 120 + size].contiguous()
    except ImportError:  # pragma: no cover - scikit-image is a dev dependency
        g = torch.Generator().manual_seed(seed)
        return blur(torch.rand(1, 3, size, size, generator=g).double(), gaussian_kernel(1.0))[0].float()


def _degrade(hr: torch.Tensor, k: torch.Tensor, s: int = 2) -> torch.Tensor:
    return blur(hr[None].double(), k, stride=s)[0].float().clamp(0, 1)


# --- networks ------------------------------------------------------------------------------
def test_generator_layers_equal_its_composed_kernel():
    g = DeepLinearGenerator()
    x = torch.rand(2, 3, 64, 64)
    assert g.kernel().shape == (13, 13)
    out = g(x)
    assert out.shape == (2, 3, 26, 26)
    assert torch.allclose(out, g.downscale(x), atol=1e-6)
    assert KernelGANConfig().kernel_size == 13 and KernelGANConfig().d_crop == 26


def test_discriminator_is_a_7x7_patch_map_in_0_1():
    d = PatchDiscriminator()
    with torch.no_grad():
        y = d(torch.rand(2, 3, 26, 26) * 2 - 1)
    assert y.shape == (2, 1, 20, 20)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert sum(hasattr(m, "weight_orig") for m in d.modules()) == 7  # spectral norm on every conv


# --- regularisers ----------------------------------------------------------------------------
def test_sum_to_one_is_zero_only_for_a_normalised_kernel():
    k = gaussian_kernel(1.5, 13)
    assert float(sum_to_one_loss(k)) == pytest.approx(0.0, abs=1e-12)
    assert float(sum_to_one_loss(2 * k)) == pytest.approx(1.0)


def test_centre_term_is_zero_when_centred_and_grows_with_the_shift():
    centred = gaussian_kernel(1.5, 13, offset=0.5)  # where a stride-2 kernel belongs
    assert float(centre_loss(centred, 2)) == pytest.approx(0.0, abs=1e-6)  # truncation moves it by < 1e-3 px
    one = gaussian_kernel(1.5, 13, offset=1.5)
    two = gaussian_kernel(1.5, 13, offset=2.5)
    assert 0 < float(centre_loss(one, 2)) < float(centre_loss(two, 2))
    assert float(centre_loss(one, 2)) == pytest.approx(1.0, rel=0.02)  # 1 px off on both axes
    assert centre_of_mass(gaussian_kernel(1.0, 13)).tolist() == pytest.approx([6.0, 6.0])


def test_boundary_term_penalises_mass_at_the_border_only():
    mask = boundary_mask(13)
    assert float(mask[6, 6]) == 0.0 and float(mask[0, 0]) == pytest.approx(30.0)
    inner = torch.zeros(13, 13, dtype=torch.float64)
    inner[5:8, 5:8] = 1 / 9
    edge = torch.zeros(13, 13, dtype=torch.float64)
    edge[0, 0] = edge[12, 12] = 0.5
    assert float(boundaries_loss(inner, mask)) == 0.0
    assert float(boundaries_loss(edge, mask)) > 0.1


# --- the estimate ---------------------------------------------------------------------------
def test_estimate_is_a_normalised_centred_13x13_kernel():
    truth = anisotropic_gaussian_kernel(3.0, 0.7, 0.6, 13, offset=0.5)
    r = estimate_kernel(_degrade(_texture(160), truth), 2, TINY)
    assert r.fallback_reason is None and r.iterations == 12
    assert r.kernel.shape == (13, 13) and r.kernel.sum() == pytest.approx(1.0)
    assert (r.kernel >= 0).all()
    assert centre_of_mass(torch.from_numpy(r.kernel)).tolist() == pytest.approx([6.5, 6.5], abs=0.1)
    d = r.degradation()
    assert d.kind == "estimate" and d.resolved and d.down == "stride"
    assert torch.allclose(d.kernel, torch.from_numpy(r.kernel))


def test_postprocess_centres_and_drops_negligible_taps():
    shifted = gaussian_kernel(1.0, 13, offset=1.5).numpy() + 1e-4  # off centre, with a floor of noise
    k = km.postprocess_kernel(shifted, 2)
    assert centre_of_mass(torch.from_numpy(k)).tolist() == pytest.approx([6.5, 6.5], abs=1e-2)
    assert k.sum() == pytest.approx(1.0) and (k == 0).sum() > 100


def test_same_seed_same_kernel():
    lr = _degrade(_texture(160), gaussian_kernel(1.2, 13, offset=0.5))
    a = estimate_kernel(lr, 2, TINY).kernel
    b = estimate_kernel(lr, 2, TINY).kernel
    assert np.array_equal(a, b)


def test_x4_kernel_is_k2_composed_with_itself_dilated(caplog):
    lr = _degrade(_texture(128), gaussian_kernel(1.2, 13, offset=0.5))
    with caplog.at_level(logging.WARNING):
        r = estimate_kernel(lr, 4, TINY)
    assert "x4 kernel estimates are not reliable yet" in caplog.text  # users are told, every time
    assert r.kernel.shape == (25, 25) and r.kernel.sum() == pytest.approx(1.0)
    full = compose_x4(r.kernel_x2).numpy()  # (37, 37)
    assert np.allclose(r.kernel, full[6:-6, 6:-6] / full[6:-6, 6:-6].sum())
    assert full[6:-6, 6:-6].sum() > 0.99  # the crop loses (almost) nothing
    assert centre_of_mass(torch.from_numpy(r.kernel)).tolist() == pytest.approx([13.5, 13.5], abs=0.05)
    # One stride-4 step with k4 = two stride-2 steps with k2, away from the borders.
    x = torch.rand(1, 1, 96, 96, dtype=torch.float64)
    k2, k4 = torch.from_numpy(r.kernel_x2), torch.from_numpy(r.kernel)
    twice = blur(blur(x, k2, stride=2), k2, stride=2)
    once = blur(x, k4, stride=4)
    assert torch.allclose(once[..., 5:-5, 5:-5], twice[..., 5:-5, 5:-5], atol=2e-3)


def _orientation_error(theta_a: float, theta_b: float) -> float:
    d = abs(theta_a - theta_b) % math.pi
    return math.degrees(min(d, math.pi - d))


def test_kernel_orientation_helper():
    k = anisotropic_gaussian_kernel(5.0, 0.8, math.radians(30), 15)
    theta, elong = kernel_orientation(k)
    assert _orientation_error(theta, math.radians(30)) < 1 and elong > 4
    assert kernel_error(k, k) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_orientation_of_an_anisotropic_blur_within_20_degrees():
    """A few hundred iterations recover the direction of a known elongated blur (≈ 30 s)."""
    theta = math.radians(30)
    truth = anisotropic_gaussian_kernel(5.0, 0.7, theta, 13, offset=0.5)
    from skimage.data import astronaut

    img = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255
    lr = _degrade(img[:, 100:356, 100:356].contiguous(), truth)  # (3, 128, 128)
    r = estimate_kernel(lr, 2, KernelGANConfig().with_iterations(400))
    assert r.fallback_reason is None
    est, _ = kernel_orientation(r.kernel)
    assert _orientation_error(est, theta) < 20
    assert kernel_error(r.kernel, truth) < kernel_error(km.bicubic_kernel(2), truth)


# --- bad input -------------------------------------------------------------------------------
def test_small_frames_fall_back_to_bicubic(caplog):
    r = estimate_kernel(torch.rand(3, 40, 100), 2, TINY)
    assert r.fallback and "100x40" in r.fallback_reason and "64x64" in r.fallback_reason
    assert "falls back to bicubic" in caplog.text
    assert r.degradation().kind == "bicubic"
    assert np.allclose(r.kernel, km.bicubic_kernel(2))


def test_flat_scene_falls_back_to_bicubic():
    r = estimate_kernel([torch.full((3, 80, 80), 0.0), torch.full((3, 80, 80), 0.0)], 4, TINY)
    assert r.fallback and "flat" in r.fallback_reason
    assert r.kernel.shape == km.bicubic_kernel(4).shape and r.degradation().kind == "bicubic"


def test_nan_frames_and_divergence_fall_back(monkeypatch):
    bad = _texture().clone()
    bad[0, 5, 5] = float("nan")
    assert "NaN" in estimate_kernel(bad, 2, TINY).fallback_reason

    real = DeepLinearGenerator.kernel
    monkeypatch.setattr(DeepLinearGenerator, "kernel", lambda self: real(self) * float("nan"))
    r = estimate_kernel(_texture(), 2, TINY)
    assert r.fallback and "diverged" in r.fallback_reason


def test_bicubic_kernel_equals_matlab_imresize():
    from vsr_pipeline.degrade.resize import imresize

    x = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    for s in (2, 4):
        k = torch.from_numpy(km.bicubic_kernel(s))
        assert torch.allclose(blur(x, k, stride=s)[..., 4:-4, 4:-4], imresize(x, 1 / s)[..., 4:-4, 4:-4], atol=1e-12)


# --- caching ---------------------------------------------------------------------------------
def test_scene_cache_hits_on_same_content_and_misses_on_new(tmp_path, monkeypatch):
    calls = []
    real = kg.estimate_kernel
    monkeypatch.setattr(kg, "estimate_kernel", lambda *a, **k: calls.append(1) or real(*a, **k))
    frames = [_texture(80), _texture(80).flip(-1)]
    est = KernelEstimator(2, TINY, cache_dir=tmp_path / "cache")
    first = est.estimate(frames)
    again = est.estimate([f.clone() for f in frames])
    assert again is first and (est.hits, est.misses) == (1, 1) and len(calls) == 1
    est.estimate([_texture(80).flip(-2)])
    assert est.misses == 2 and len(calls) == 2

    disk = KernelEstimator(2, TINY, cache_dir=tmp_path / "cache")  # a new process, same cache folder
    back = disk.estimate(frames)
    assert disk.hits == 1 and len(calls) == 2 and np.array_equal(back.kernel, first.kernel)

    d1 = est.degradation_for_scene(0, frames)
    d2 = est.degradation_for_scene(0, frames)
    assert d1.kind == "estimate" and torch.equal(d1.kernel, d2.kernel) and len(calls) == 2


def test_estimate_scene_kernel_caches_in_memory(monkeypatch):
    calls = []
    real = kg.estimate_kernel
    monkeypatch.setattr(kg, "estimate_kernel", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = KernelGANConfig(iterations=5, seed=123)
    frames = torch.stack([_texture(72), _texture(72)])  # (T, 3, H, W)
    a = ke.estimate_scene_kernel(frames, 2, cfg)
    b = ke.estimate_scene_kernel(frames.clone(), 2, cfg)
    assert a is b and len(calls) == 1


# --- the CLI ---------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cli_writes_kernel_and_picture(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=4, size=(96, 80)).path
    r = run("estimate-kernel", clip, "--out", tmp_path / "k.npy", "--png", tmp_path / "k.png", "--scale", "4", "--method", "kernelgan", "--iterations", "8")
    assert r.exit_code == 0, r.output
    k = np.load(tmp_path / "k.npy")
    assert k.shape == (25, 25) and k.sum() == pytest.approx(1.0)
    with Image.open(tmp_path / "k.png") as im:
        assert im.format == "PNG" and im.size[0] >= 25
    assert "x4 kernel 25x25 from scene 0" in r.output
    assert files(tmp_path) == ["in.mp4", "k.npy", "k.png"]


def test_cli_small_clip_warns_and_writes_bicubic(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(64, 48)).path
    r = run("estimate-kernel", clip, "--out", tmp_path / "k.npy", "--scale", "2")
    assert r.exit_code == 0, r.output
    assert "Warning" in r.output and "64x48" in r.output
    assert np.allclose(np.load(tmp_path / "k.npy"), km.bicubic_kernel(2))


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["missing.mp4", "--out", "k.npy"], 3, "does not exist"),
        (["in.mp4", "--out", "k.txt"], 7, "must end in .npy"),
        (["in.mp4", "--out", "k.npy", "--png", "k.jpg"], 7, "must end in .png"),
        (["in.mp4", "--out", "k.npy", "--scene", "3"], 7, "has 1 scene"),
        (["in.mp4", "--out", "k.npy", "--scale", "3"], 2, "3"),
    ],
)
def test_cli_bad_input_leaves_nothing(tmp_path, monkeypatch, args, code, words):
    make_clip(tmp_path / "in.mp4", n=3, size=(96, 80))
    monkeypatch.chdir(tmp_path)
    r = run("estimate-kernel", *args)
    assert r.exit_code == code, r.output
    assert words in r.output
    assert files(tmp_path) == ["in.mp4"]


def test_cli_refuses_to_overwrite(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(96, 80)).path
    (tmp_path / "k.npy").write_bytes(b"keep")
    r = run("estimate-kernel", clip, "--out", tmp_path / "k.npy", "--method", "kernelgan", "--iterations", "2")
    assert r.exit_code == 4 and "already exists" in r.output
    assert (tmp_path / "k.npy").read_bytes() == b"keep"


def test_cli_scene_picks_the_nth_detected_scene(tmp_path):
    import av

    from clips import pattern

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w") as c:  # scene 0: texture, frames 0-9; scene 1: flat grey, frames 10-19
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 96, 80, "yuv444p"
        for i in range(20):
            img = pattern(i, 96, 80) if i < 10 else np.full((80, 96, 3), 200, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    r = run("estimate-kernel", path, "--out", tmp_path / "k.npy", "--scene", "1", "--scale", "2")
    assert r.exit_code == 0, r.output
    assert "frames 10-19" in r.output and "flat" in r.output
