"""Runtimes on CUDA (marker ``gpu``; skipped without a CUDA device): torch fp16, ONNX Runtime's CUDA/TensorRT providers, auto."""

from __future__ import annotations

import pytest
import torch
from runtime_nets import ConvStack

from vsr_pipeline.config import RunnerConfig
from vsr_pipeline.runner import Runner

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_torch_fp16_close_to_fp32():
    model = ConvStack(3)
    x = torch.rand(1, 5, 3, 40, 48)
    full = Runner(model, 2, RunnerConfig(device="cuda", runtime="torch"))(x)
    half = Runner(model, 2, RunnerConfig(device="cuda", runtime="torch", half=True))(x)
    assert (full - half).abs().max().item() < 1e-2


def test_onnxruntime_cuda_provider_matches_torch():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vsr_pipeline.runtimes.onnxrt import cuda_providers

    if not cuda_providers():
        pytest.skip("this onnxruntime build has no CUDA/TensorRT provider (install onnxruntime-gpu)")
    model = ConvStack(3)
    x = torch.rand(1, 5, 3, 40, 48)
    ref = Runner(model, 2, RunnerConfig(device="cuda", runtime="torch"))(x)
    fast = Runner(model, 2, RunnerConfig(device="cuda", runtime="onnxruntime"))(x)
    assert fast.device.type == "cuda"
    assert (fast - ref).abs().max().item() < 1e-3  # TF32/TensorRT kernels: not bit-level, but the same picture


def test_auto_on_cuda_picks_a_matching_runtime():
    from vsr_pipeline.runtimes import auto

    model = ConvStack(3)
    x = torch.rand(1, 5, 3, 180, 320)
    r = Runner(model, 2, RunnerConfig(device="cuda"))
    r(x)
    report = r.report()
    assert report["name"] in ("torch", "onnxruntime")
    assert report["name"] == "torch" or report["trial_max_difference"][report["name"]] <= auto.TOLERANCE
