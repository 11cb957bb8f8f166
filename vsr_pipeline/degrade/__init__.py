"""Degradation operators A' = downsample ∘ blur, their kernels, and MATLAB-exact bicubic resize.

All tensors follow the pipeline contract: float, RGB, [0, 1], (..., C, H, W).
"""

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
from vsr_pipeline.degrade.operator import VALID_FORMS, Degradation, blur, parse_degradation
from vsr_pipeline.degrade.resize import imresize, output_size, resize_matrix

__all__ = [
    "Degradation",
    "VALID_FORMS",
    "anisotropic_gaussian_kernel",
    "blur",
    "compose_x4",
    "disk_kernel",
    "gaussian_kernel",
    "imresize",
    "load_kernel",
    "normalize_kernel",
    "output_size",
    "parse_degradation",
    "random_kernel",
    "resize_matrix",
    "save_kernel",
    "stride_offset",
]
