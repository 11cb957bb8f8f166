"""The OpenVINO runtime (CPU), in fp32 so that its output matches torch."""

from __future__ import annotations

import numpy as np
import torch

from vsr_pipeline.errors import ConfigError
from vsr_pipeline.runtimes.base import ExportedRuntime


def load_openvino():
    """The ``openvino`` module; ConfigError with a sentence when it is installed but cannot load in this process.

    ``vapoursynth-mlrt-ov`` (vs-mlrt's OpenVINO plugin) bundles its own ``libopenvino``;
    once VapourSynth has loaded that plugin (vspipe does before a script runs), the Python
    package's version check refuses the library already in the process.
    """
    try:
        import openvino as ov
    except ImportError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if "mismatches with OpenVINO Runtime library" in str(exc):
            cause = (" Another OpenVINO library was loaded into this process first (vs-mlrt's plugin, vapoursynth-mlrt-ov, bundles one"
                     " and vspipe loads it before the script runs); import openvino before vapoursynth in your own Python, or")
        else:
            cause = " Reinstall it, or"
        raise ConfigError(f"The openvino package cannot load here ({first}).{cause} use --runtime onnxruntime or torch.") from None
    return ov


class OpenVinoRuntime(ExportedRuntime):
    """OpenVINO compiled models over per-shape exports; threads follow ``torch.get_num_threads()``.

    The precision hint is f32: OpenVINO's CPU plugin otherwise picks bf16 on CPUs that have
    it, which differs from torch by about 1e-2.
    """

    name = "openvino"

    def __init__(self, model, device) -> None:
        load_openvino()  # fail at build time, where a driver reports it, not at the first frame
        super().__init__(model, device)

    def _compile(self, onnx_bytes: bytes):
        ov = load_openvino()
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(core.read_model(onnx_bytes), "CPU", config)
        request = compiled.create_infer_request()

        def infer(feeds: dict[str, np.ndarray]) -> np.ndarray:
            request.infer(feeds)
            return request.get_output_tensor(0).data.copy()

        return infer
