"""Turn a parsed ``.param`` graph and its ``.bin`` weights into one ``nn.Module``.

:class:`NcnnGraph` keeps the layers in file order (ncnn's own execution order: every layer
line comes after the lines producing its inputs) and runs them over a dictionary of named
blobs, dropping each blob after its last consumer so that large graphs stay lean.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor, nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.ncnn import layers, resample, shape_ops
from vsr_pipeline.models.ncnn.common import NcnnLayer
from vsr_pipeline.models.ncnn.param import (
    GraphSpec,
    LayerSpec,
    ParamKindError,
    parse_param,
)
from vsr_pipeline.models.ncnn.weights import WeightReader

Builder = Callable[[LayerSpec, WeightReader, Path], NcnnLayer]

BUILDERS: dict[str, Builder] = {
    "BinaryOp": lambda s, r, p: shape_ops.BinaryOp(s, p),
    "Concat": lambda s, r, p: shape_ops.Concat(s),
    "Convolution": layers.Convolution,
    "Crop": lambda s, r, p: shape_ops.Crop(s, p),
    "Deconvolution": layers.Deconvolution,
    "Eltwise": lambda s, r, p: shape_ops.Eltwise(s, p),
    "InnerProduct": layers.InnerProduct,
    "Input": lambda s, r, p: shape_ops.Input(),
    "Interp": lambda s, r, p: resample.Interp(s, p),
    "PReLU": layers.PReLU,
    "PixelShuffle": lambda s, r, p: resample.PixelShuffle(s, p),
    "Pooling": lambda s, r, p: resample.Pooling(s, p),
    "Scale": layers.Scale,
    "Split": lambda s, r, p: shape_ops.Split(s),
}


class NcnnGraph(nn.Module):
    """An ncnn graph as a differentiable torch module.

    ``forward(x)`` takes the graph's single Input blob as ``(B, C, H, W)`` and returns its
    single output blob (the one no layer consumes) as ``(B, C', H', W')``; it computes what
    ncnn's CPU float32 path computes, image by image, for every image of the batch at once.
    """

    def __init__(self, spec: GraphSpec, reader: WeightReader) -> None:
        super().__init__()
        self.path = spec.path
        self.specs = spec.layers
        built = []
        for layer in spec.layers:
            builder = BUILDERS.get(layer.type)
            if builder is None:
                raise ModelError(
                    f"ncnn graph '{spec.path}' uses layer type '{layer.type}' (layer '{layer.name}'), "
                    f"which vsrpipe cannot run; supported: {', '.join(sorted(BUILDERS))}."
                )
            try:
                built.append(builder(layer, reader, spec.path))
            except ParamKindError as err:
                raise ModelError(f"ncnn graph '{spec.path}' is malformed in layer '{layer.name}': {err}.") from None
        reader.finish()
        self.layers = nn.ModuleList(built)
        self.input_blob, self.output_blob = self._endpoints()
        # after layer i runs, the blobs whose last consumer it was can be dropped
        last_use: dict[str, int] = {}
        for i, layer in enumerate(spec.layers):
            for name in layer.bottoms:
                last_use[name] = i
        self._release = [
            tuple(dict.fromkeys(n for n in layer.bottoms if last_use[n] == i)) for i, layer in enumerate(spec.layers)
        ]

    def _endpoints(self) -> tuple[str, str]:
        """The Input layer's blob and the one blob nothing consumes; refuse anything else."""
        inputs = [layer for layer in self.specs if layer.type == "Input"]
        if len(inputs) != 1:
            raise ModelError(
                f"ncnn graph '{self.path}' has {len(inputs)} Input layers; vsrpipe runs graphs with exactly one input."
            )
        if len(inputs[0].tops) != 1:
            raise ModelError(
                f"ncnn graph '{self.path}': its Input layer '{inputs[0].name}' gives {len(inputs[0].tops)} blobs; "
                "vsrpipe runs graphs with exactly one input image."
            )
        written: dict[str, int] = {}  # blob -> index of the last layer writing it
        read: dict[str, int] = {}  # blob -> index of the last layer reading it
        for i, layer in enumerate(self.specs):
            for name in layer.bottoms:
                if name not in written:
                    raise ModelError(
                        f"ncnn graph '{self.path}' is malformed: layer '{layer.name}' reads blob '{name}' before any layer writes it."
                    )
                read[name] = i
            for name in layer.tops:
                written[name] = i
        # an in-place layer (top named like its bottom) rewrites a blob after it was read
        outputs = [name for name, i in written.items() if read.get(name, -1) <= i]
        if len(outputs) != 1:
            raise ModelError(
                f"ncnn graph '{self.path}' has {len(outputs)} output blobs ({', '.join(outputs[:5])}); "
                "vsrpipe runs graphs with exactly one output."
            )
        return inputs[0].tops[0], outputs[0]

    def residual_sites(self) -> list[str]:
        """Names (``layers.i``) of the layers adding two blobs — where residual blocks end; MC-dropout follows them."""
        def adds(layer: NcnnLayer) -> bool:
            if isinstance(layer, shape_ops.BinaryOp):
                return layer.op == 0 and not layer.with_scalar
            return isinstance(layer, shape_ops.Eltwise) and layer.op == 1

        return [f"layers.{i}" for i, (spec, layer) in enumerate(zip(self.specs, self.layers)) if len(spec.bottoms) == 2 and adds(layer)]

    def forward(self, x: Tensor) -> Tensor:
        blobs: dict[str, Tensor] = {}
        for spec, layer, release in zip(self.specs, self.layers, self._release):
            bottoms = [blobs[name] for name in spec.bottoms] if spec.type != "Input" else [x]
            tops = layer(*bottoms)
            for name in release:
                del blobs[name]
            blobs.update(zip(spec.tops, tops))
        return blobs[self.output_blob]


def read_graph(param_path: str | Path, bin_path: str | Path | None = None) -> NcnnGraph:
    """Build the :class:`NcnnGraph` of ``param_path`` with weights from ``bin_path``.

    ``bin_path`` defaults to the ``.bin`` beside the ``.param``. Every problem with either
    file (missing, malformed, truncated, an unsupported layer) is one :class:`ModelError`.
    """
    param_path = Path(param_path)
    bin_path = param_path.with_suffix(".bin") if bin_path is None else Path(bin_path)
    spec = parse_param(param_path)
    return NcnnGraph(spec, WeightReader(bin_path))
