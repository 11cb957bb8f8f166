"""The ONNX Runtime runtime: CPU, or the CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

import logging

import torch

from vsr_pipeline.runtimes.base import ExportedRuntime

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")  # preferred first


def cuda_providers() -> list[str]:
    """The GPU execution providers this onnxruntime build offers (empty for the CPU wheel)."""
    import onnxruntime as ort

    return [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]


class OnnxRuntime(ExportedRuntime):
    """ONNX Runtime sessions over per-shape exports; threads follow ``torch.get_num_threads()``."""

    name = "onnxruntime"

    def _compile(self, onnx_bytes: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            index = {"device_id": self.device.index or 0}
            providers = [(p, index) for p in cuda_providers()] + providers
        session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        return lambda feeds: session.run(None, feeds)[0]
