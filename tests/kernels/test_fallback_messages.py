"""Issue 14, item 7: the fallback names the dimension that is too small; estimate-kernel warns once."""

import subprocess
import sys

import pytest
import torch

from clips import make_clip
from vsr_pipeline.kernels.kernelgan import KernelGANConfig, estimate_kernel as kernelgan_estimate
from vsr_pipeline.kernels.spectral import SpectralConfig, estimate_kernel_spectral as spectral_estimate


@pytest.mark.parametrize(
    "w,h,named",
    [
        (80, 60, "the frames' height (60 px) is smaller than the 64 px the spectral fit needs (the frames are 80x60)"),
        (60, 80, "the frames' width (60 px) is smaller than"),
        (50, 40, "the frames' width (50 px) and height (40 px) are smaller than"),
    ],
)
def test_spectral_fallback_names_the_dimension(w, h, named):
    est = spectral_estimate(torch.rand(3, 3, h, w), 2, SpectralConfig())
    assert est.fallback and named in est.fallback_reason


def test_kernelgan_fallback_names_the_dimension():
    est = kernelgan_estimate(torch.rand(2, 3, 40, 100), 2, KernelGANConfig.fast())
    assert est.fallback and "the frames' height (40 px) is smaller than the 64x64 crops KernelGAN trains on" in est.fallback_reason


def test_estimate_kernel_warns_once(tmp_path):
    c = make_clip(tmp_path / "small.mp4", n=4, size=(80, 60))
    p = subprocess.run(
        [sys.executable, "-m", "vsr_pipeline.cli", "estimate-kernel", str(c.path), "--out", str(tmp_path / "k.npy")],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("height (60 px)") == 1, p.stderr
    assert "Warning: using the bicubic kernel for scene 0: the frames' height (60 px) is smaller" in p.stderr
    assert "WARNING:" not in p.stderr
