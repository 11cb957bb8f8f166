"""Loading an ONNX graph as a protocol model: ``--model FILE.onnx``.

Adaptation tunes torch parameters and every runtime of :mod:`vsr_pipeline.runtimes` starts
from a torch module, so the graph is converted to torch with ``onnx2torch`` (the
``onnx-models`` extra) rather than run as it is. Before converting, the file is checked so
that every way it can fail is one :class:`~vsr_pipeline.errors.ModelError` sentence naming it:

* it must be a readable ONNX model (not text, not truncated) that passes ``onnx.checker``;
* it must take exactly one input, a float32 image batch ``N×3×H×W`` whose height and width
  are dynamic (a fixed-size graph cannot serve other frame or tile sizes), and give one output;
* every operator must have an onnx2torch converter (the first one without is named);
* on a small probe image the output must be 3-channel and a whole-number ``s`` times the
  input in both directions: ``s`` becomes ``info.scale``.

A graph whose weights convert to torch Parameters (convolutions, …) is adaptable; one that
converts without any (a plain Resize, weights folded into constants) is run-only:
``info.trainable`` is False and ``--adapt`` is refused by the adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import ModelInfo, centre_frame
from vsr_pipeline.models.community import not_a_weights_file, pad_to_grid, text_head

log = logging.getLogger(__name__)

INSTALL = "pip install 'vsr-pipeline[onnx-models]'"
PROBE = (64, 96)  # (H, W) of the probe image that measures the native scale: non-square, multiples of 32 (U-Net depths)


class OnnxModel(nn.Module):
    """A converted ONNX graph as a protocol model: (B, T, C, H, W) -> (B, C, sH, sW) from the centre frame.

    ``batched``: the graph's batch axis is dynamic; otherwise (fixed at 1) the images of a
    batch are run one at a time. Gradients flow through ``self.net`` (adaptation tunes it).
    """

    def __init__(self, net: nn.Module, info: ModelInfo, *, batched: bool) -> None:
        super().__init__()
        self.net = net
        self.info = info
        self.batched = batched
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = centre_frame(x)  # (B, C, H, W)
        h, w = image.shape[-2:]
        image = pad_to_grid(image, self.info.multiple_of)
        if self.batched or image.shape[0] == 1:
            out = self.net(image)
        else:
            out = torch.cat([self.net(one[None]) for one in image])
        s = self.info.scale
        return out[..., : h * s, : w * s]

    def extra_repr(self) -> str:
        return f"name={self.info.name}, scale={self.info.scale}, trainable={self.info.trainable}"


def load_onnx_file(path: Path, *, scale: float | None = None) -> OnnxModel:
    """Load the ONNX graph ``path`` as a protocol model named after the file stem, in eval mode on the CPU.

    ``scale`` (the requested output scale) is not used: the graph runs at its native scale
    and the runner resizes. Raises :class:`ModelError` (one sentence naming the file) for
    a missing converter, an unreadable file, an input that is not a dynamic-size RGB image,
    an operator without a converter, or an output that is not a whole-number upscale.
    """
    path = Path(path)
    problem = not_a_weights_file(path)
    if problem is not None:
        raise ModelError(f"--model {str(path)!r} {problem}.")
    try:
        from onnx2torch import convert  # imports onnx, its dependency
    except ImportError:
        raise ModelError(f"ONNX model {str(path)!r} needs the onnx2torch converter; install it with `{INSTALL}`.") from None
    proto = _read(path)
    batched = _check_io(proto, path)
    _check_operators(proto, path)
    try:
        net = convert(proto)
    except Exception as exc:  # a converter that rejects an attribute or a shape raises its own error types
        raise ModelError(f"ONNX model {str(path)!r} could not be converted to torch ({_reason(exc)}).") from None
    native = _probe_scale(net, path)
    multiple = _grid(net, native, path)
    trainable = any(p.is_floating_point() for p in net.parameters())
    info = ModelInfo(name=path.stem, scale=native, frames=1, channels=3, trainable=trainable, multiple_of=multiple)
    model = OnnxModel(net, info, batched=batched)
    log.info("loaded ONNX model %s: x%d, %s", path, native, "adaptable" if trainable else "run-only (no trainable weights)")
    return model


def _read(path: Path):
    """The checked ``ModelProto`` of ``path``; ModelError for text, truncated or invalid files."""
    import onnx

    head = text_head(path)
    if head is not None:
        raise ModelError(f"ONNX model {str(path)!r} is a text file, not an ONNX model; it cannot be read as a model.")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf's DecodeError, onnx's ValidationError, missing external data (OSError)
        raise ModelError(f"ONNX model {str(path)!r} is not a readable ONNX model ({_reason(exc)}); it may be corrupt or truncated.") from None
    return proto


def _check_io(proto, path: Path) -> bool:
    """ModelError unless the graph takes one float32 N×3×H×W input with dynamic H and W and gives one output.

    Returns whether the batch axis is dynamic (else it is 1 and batches are run image by image).
    """
    from onnx import TensorProto

    name = str(path)
    weights = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelError(
            f"ONNX model {name!r} has {len(inputs)} input(s) and {len(proto.graph.output)} output(s); "
            "vsrpipe runs graphs with one N×3×H×W image input and one output."
        )
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != TensorProto.FLOAT:
        dtype = TensorProto.DataType.Name(tensor.elem_type).lower() if tensor.elem_type else "non-tensor"
        raise ModelError(f"ONNX model {name!r} takes {dtype} input; only float32 graphs (N×3×H×W RGB in [0, 1]) are supported.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim] if tensor.HasField("shape") else None
    if dims is None or len(dims) != 4:
        rank = "an input of unknown rank" if dims is None else f"a rank-{len(dims)} input"
        raise ModelError(f"ONNX model {name!r} takes {rank}; vsrpipe runs graphs that take an N×3×H×W image batch.")
    batch, channels, height, width = dims
    if channels not in (3, None):
        raise ModelError(f"ONNX model {name!r} takes {channels}-channel input (N×{channels}×H×W); only RGB (3-channel) models are supported.")
    if height is not None or width is not None:
        size = f"{height or 'H'}×{width or 'W'}"
        raise ModelError(
            f"ONNX model {name!r} takes only {size} images (its input size is fixed), so it cannot serve other frame sizes; "
            "export it with dynamic height and width axes."
        )
    if batch not in (1, None):
        raise ModelError(f"ONNX model {name!r} takes batches of exactly {batch} images; export it with a batch axis of 1 or dynamic.")
    return batch is None


def _check_operators(proto, path: Path) -> None:
    """ModelError naming the first operator of the graph that onnx2torch has no converter for."""
    from onnx2torch.node_converters import get_converter

    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    for node in proto.graph.node:
        domain = node.domain or "ai.onnx"
        try:
            get_converter(operation_type=node.op_type, version=opsets[domain], domain=node.domain)
        except (KeyError, NotImplementedError):
            op = node.op_type if domain == "ai.onnx" else f"{domain}.{node.op_type}"
            raise ModelError(f"ONNX model {str(path)!r} uses operator {op!r}, which vsrpipe cannot run (onnx2torch has no converter for it).") from None


def _probe_scale(net: nn.Module, path: Path) -> int:
    """The native scale of the converted ``net``, measured on a :data:`PROBE`-sized image; ModelError unless a whole number ≥ 1 with RGB output."""
    h, w = PROBE
    probe = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            y = net.eval()(probe)
    except Exception as exc:  # a graph that cannot run on N×3×H×W float input fails in the converted ops
        raise ModelError(f"ONNX model {str(path)!r} failed on a 1×3×{h}×{w} RGB probe image ({_reason(exc)}).") from None
    if not torch.is_tensor(y) or y.ndim != 4 or y.shape[:2] != (1, 3):
        shape = "×".join(map(str, y.shape)) if torch.is_tensor(y) else type(y).__name__
        raise ModelError(f"ONNX model {str(path)!r} turns a 1×3×{h}×{w} image into {shape}, not a 1×3×sH×sW RGB image.")
    oh, ow = y.shape[-2:]
    if oh % h or ow % w or oh // h != ow // w or oh < h:
        raise ModelError(
            f"ONNX model {str(path)!r} turns a {h}×{w} image into {oh}×{ow}, which is not a whole-number upscale "
            "(the same integer factor ≥ 1 in both directions); only such models are supported."
        )
    return oh // h


GRIDS = (1, 2, 4, 8, 16, 32, 64)  # the multiples of H and W a graph may need, tried smallest first


def _grid(net: nn.Module, scale: int, path: Path) -> int:
    """The smallest of :data:`GRIDS` whose odd multiples the graph upscales cleanly (a U-Net needs H and W in
    multiples of 2^depth); frames are padded to it. ModelError when none works."""
    for m in GRIDS:
        odd = max(3, -(-48 // m) | 1)  # an odd multiple of m, at least 48 px: not a multiple of 2m
        h, w = m * odd, m * (odd + 2)
        probe = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
        try:
            with torch.no_grad():
                y = net(probe)
        except Exception:  # noqa: BLE001 - a size the graph cannot take raises whatever its ops raise
            continue
        if torch.is_tensor(y) and tuple(y.shape[-2:]) == (h * scale, w * scale):
            return m
    raise ModelError(f"ONNX model {str(path)!r} ran on a {PROBE[0]}×{PROBE[1]} image but not on other sizes; "
                     "vsrpipe needs graphs that take any frame size (padded to a multiple of at most 64).")


def _reason(exc: Exception, limit: int = 300) -> str:
    """``exc`` as "Type: message" on one line, at most ``limit`` characters (converter and checker messages span lines)."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
