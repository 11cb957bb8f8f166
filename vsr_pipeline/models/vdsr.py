"""VDSR-style pre-upsampling network: bicubic to the output size first, then a residual CNN.

The design of VDSR (Kim et al. 2016) and of the paper's VSRResNet: the network never sees LR
pixels, only the bicubic upscale, and predicts what to subtract from it::

    centre frame (B, C, H, W)
      └─ MATLAB bicubic ×s ─ conv3x3-ReLU ─ [conv3x3-ReLU] × (convs − 2) ─ conv3x3 ─ subtract

The CNN is spandrel's DnCNN class (``act_mode="R"``: no batch norm), so the tensors of an
export are a 1× DnCNN to any tool that reads spandrel's formats. Because the upscale comes
first, one set of weights runs at any factor (``ModelInfo.any_scale``): a network trained at
×4 and run at ×3 applies its ×4 sharpening to a ×3 upscale — the mismatch the paper's E1
fine-tunes away, which post-upsampling networks (vsrnet, SRVGGNetCompact) run at ×4 and
resized do not have.

Exports are safetensors files whose metadata names ``vsrpipe.arch = "vdsr"`` and the
hyper-parameters (:func:`save_vdsr`, :func:`load_vdsr`), so ``--model file.safetensors``
rebuilds the network and runs it at the requested ``--scale``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import META_CONFIG, META_NAME, ModelInfo, centre_frame, read_own_weights, write_own_weights

ARCH = "vdsr"
MIN_CONVS = 8  # spandrel recognises a DnCNN without batch norm from its eighth convolution on


class VDSR(nn.Module):
    """Bicubic ×``scale`` of the centre frame, then a residual CNN: (B, T, C, H, W) -> (B, C, sH, sW).

    ``trained_scale`` is the factor the weights were trained for (kept in exports);
    ``scale`` the one this instance runs at.
    """

    def __init__(self, *, features: int, convs: int, scale: float, trained_scale: int | None = None, name: str = "vdsr") -> None:
        super().__init__()
        if convs < MIN_CONVS:
            raise ValueError(f"a vdsr network needs at least {MIN_CONVS} convolutions, got {convs}")
        from spandrel.architectures.DnCNN import DnCNN

        self.features, self.convs = features, convs
        self.trained_scale = int(trained_scale if trained_scale is not None else scale)
        self.net = DnCNN(in_nc=3, out_nc=3, nc=features, nb=convs, act_mode="R", mode="DnCNN")
        self.info = ModelInfo(name=name, scale=scale, frames=1, any_scale=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = centre_frame(x)  # (B, C, H, W)
        return self.net(imresize(image, scale=self.info.scale))

    def extra_repr(self) -> str:
        return f"features={self.features}, convs={self.convs}, scale={self.info.scale:g}, trained_scale={self.trained_scale}"


def _config(model: VDSR) -> str:
    return json.dumps({"features": model.features, "convs": model.convs, "scale": model.trained_scale}, sort_keys=True)


def save_vdsr(model: VDSR, path: Path | str, *, name: str | None = None, extra: dict[str, str] | None = None) -> None:
    """Write the CNN's tensors (DnCNN names) and the hyper-parameters to a safetensors file, atomically."""
    write_own_weights(path, model.net, ARCH, _config(model), name or model.info.name, extra)


def load_vdsr(path: Path | str, *, scale: float | None = None, name: str | None = None) -> VDSR:
    """The network in ``path`` (written by :func:`save_vdsr`), run at ``scale`` (default: its trained one), in eval mode.

    Raises :class:`ModelError` naming the file when it is unreadable or does not match its metadata.
    """
    path = Path(path)
    state, meta = read_own_weights(path, ARCH)
    try:
        config = json.loads(meta[META_CONFIG])
        trained = int(config["scale"])
        model = VDSR(features=int(config["features"]), convs=int(config["convs"]), scale=scale or trained,
                     trained_scale=trained, name=name or meta.get(META_NAME) or path.stem)
        model.net.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"Weights file {str(path)!r} does not match its vdsr config ({exc}); it may be corrupt.") from None
    return model.eval()
