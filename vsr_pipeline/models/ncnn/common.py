"""What every layer module shares: the blob convention and the refusal sentence.

A blob is a tensor ``(B, *shape)`` where ``shape`` is the ncnn Mat shape without its batch:
``(w,)`` for a 1-D Mat, ``(h, w)`` for 2-D and ``(c, h, w)`` for 3-D, so ``blob.dim() - 1``
is ncnn's ``dims``. ncnn runs one image at a time; the leading batch axis lets torch run B.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.ncnn.param import LayerSpec


class NcnnLayer(nn.Module):
    """A layer: ``forward(*bottoms) -> tuple of tops``, in the order of the layer line."""

    def forward(self, *bottoms: Tensor) -> tuple[Tensor, ...]:  # pragma: no cover - interface
        raise NotImplementedError


def unsupported(path: Path, spec: LayerSpec, what: str) -> ModelError:
    """The sentence for a supported layer type used with parameters vsrpipe does not run."""
    return ModelError(
        f"ncnn graph '{path}' uses {spec.type} with {what} (layer '{spec.name}'), which vsrpipe cannot run."
    )


def dims(blob: Tensor) -> int:
    """ncnn's ``dims`` of a blob (its rank without the batch axis)."""
    return blob.dim() - 1
