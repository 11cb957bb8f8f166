"""The networks ``vsrpipe train`` can train, and how each is built, initialised and exported.

* ``vsrnet`` — our multi-frame network, exported as a self-describing safetensors file
  (``model.safetensors``) that ``--model`` and the registry load as :class:`VSRNet`.
* ``compact`` — the single-image SRVGGNetCompact architecture of Real-ESRGAN ("RealESRGAN
  Compact": ``features`` channels, ``blocks`` body convolutions, PReLU, pixel shuffle plus a
  nearest-neighbour upsampled skip), built from spandrel's own class and exported as a plain
  state dict ``model.pth`` (tensor names ``body.N.weight`` …) — the format people download,
  which ``--model`` hands to spandrel like any community checkpoint.
* ``vdsr`` — :class:`~vsr_pipeline.models.vdsr.VDSR`, a pre-upsampling single-image network
  (bicubic first, then ``blocks`` 3×3 convolutions of ``features`` channels predicting a
  residual), exported as a self-describing safetensors file that ``--model`` runs at any
  ``--scale``.

Training feeds every network windows (B, T, C, h, w); the single-image networks run on the
centre frame (the data sampler is set to T = 1 for them).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vsr_pipeline.errors import ConfigError, ModelError
from vsr_pipeline.io.files import atomic_output
from vsr_pipeline.models.vdsr import MIN_CONVS, VDSR, load_vdsr, save_vdsr
from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, load_vsrnet, save_vsrnet

ARCHS = ("vsrnet", "compact", "vdsr")
EXPORTS = {"vsrnet": "model.safetensors", "compact": "model.pth", "vdsr": "model.safetensors"}
SINGLE_IMAGE = ("compact", "vdsr")


class CompactNet(nn.Module):
    """SRVGGNetCompact as a training network: windows (B, T, C, h, w) -> (B, C, s·h, s·w)."""

    def __init__(self, *, scale: int, features: int, convs: int) -> None:
        super().__init__()
        from spandrel.architectures.Compact import Compact

        self.net = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=convs, upscale=scale, act_type="prelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[:, x.shape[1] // 2] if x.ndim == 5 else x)


def frames_for(arch: str, frames: int) -> int:
    """Frames per training window the architecture takes (single-image networks take one)."""
    return 1 if arch in SINGLE_IMAGE else frames


def build_network(arch: str, *, scale: int, frames: int, features: int, blocks: int, name: str) -> nn.Module:
    """A fresh network of ``arch``."""
    if arch == "vsrnet":
        return VSRNet(VSRNetConfig(scale=scale, frames=frames, features=features, blocks=blocks), name=name)
    if arch == "compact":
        if blocks < 1:
            raise ConfigError("--arch compact needs --blocks >= 1 (the number of body convolutions, 16 in Real-ESRGAN's).")
        return CompactNet(scale=scale, features=features, convs=blocks)
    if arch == "vdsr":
        if blocks < MIN_CONVS:
            raise ConfigError(f"--arch vdsr needs --blocks >= {MIN_CONVS} (the number of convolutions; VDSR has 20).")
        return VDSR(features=features, convs=blocks, scale=scale, name=name)
    raise ConfigError(f"Unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


def load_init(model: nn.Module, path: Path) -> None:
    """Copy weights from an export (``.safetensors`` for vsrnet and vdsr, ``.pth`` for compact) or a ``checkpoint.pt``."""
    if path.suffix == ".safetensors":
        if isinstance(model, VDSR):
            try:
                src_vdsr = load_vdsr(path)
            except ModelError as exc:
                raise ConfigError(f"--init {path}: {exc}") from None
            if (src_vdsr.features, src_vdsr.convs) != (model.features, model.convs):
                raise ConfigError(f"--init {path} holds a vdsr of {src_vdsr.features} features and {src_vdsr.convs} "
                                  f"convolutions; this run trains {model.features} and {model.convs}.")
            model.net.load_state_dict(src_vdsr.net.state_dict())
            return
        if not isinstance(model, VSRNet):
            raise ConfigError(f"--init {path}: a safetensors export holds a vsrnet or a vdsr; this run trains another architecture.")
        src = load_vsrnet(path)
        if src.config != model.config:
            raise ConfigError(f"--init {path} holds a network {src.config} that differs from the one asked for {model.config}.")
        model.load_state_dict(src.state_dict())
        return
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if "model" in state and "step" in state:  # a checkpoint.pt
        model.load_state_dict(state["model"])
    elif isinstance(model, CompactNet):
        model.net.load_state_dict(state)
    else:
        raise ConfigError(f"--init {path} is neither a vsrnet export nor a checkpoint.pt.")


def save_export(model: nn.Module, path: Path, *, name: str, extra: dict[str, str]) -> None:
    """Write the network's deployable weights to ``path`` (atomically)."""
    if isinstance(model, VDSR):
        save_vdsr(model, path, name=name, extra=extra)
    elif isinstance(model, CompactNet):
        with atomic_output(path) as tmp:
            torch.save({k: v.detach().clone() for k, v in model.net.state_dict().items()}, str(tmp))
    else:
        save_vsrnet(model, path, name=name, extra=extra)
