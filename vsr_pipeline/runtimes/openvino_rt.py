"""The OpenVINO runtime (CPU), in fp32 so that its output matches torch."""

from __future__ import annotations

import numpy as np
import torch

from vsr_pipeline.runtimes.base import ExportedRuntime


class OpenVinoRuntime(ExportedRuntime):
    """OpenVINO compiled models over per-shape exports; threads follow ``torch.get_num_threads()``.

    The precision hint is f32: OpenVINO's CPU plugin otherwise picks bf16 on CPUs that have
    it, which differs from torch by about 1e-2.
    """

    name = "openvino"

    def _compile(self, onnx_bytes: bytes):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(core.read_model(onnx_bytes), "CPU", config)
        request = compiled.create_infer_request()

        def infer(feeds: dict[str, np.ndarray]) -> np.ndarray:
            request.infer(feeds)
            return request.get_output_tensor(0).data.copy()

        return infer
