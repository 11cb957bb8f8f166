"""VSRNet: a fast five-frame video super-resolution network, and its shipped weights.

In the spirit of VSRResNet (Lucas et al. 2019: residual blocks over the stacked frames),
but all features live at LR resolution and a pixel shuffle does the upscaling, which costs
about s² less than running the blocks on a bicubic-upsampled input::

    window (B, T=5, C, H, W)
      └─ stack frames on channels ─ conv3x3 (T·C → F) ─ ReLU            # early fusion
         └─ [ residual block (conv3x3-ReLU-conv3x3 + skip) ─ MC-dropout ] × N
            └─ + fused features ─ conv3x3 (F → C·s²) ─ pixel shuffle ×s  # (B, C, sH, sW)
               └─ + MATLAB bicubic ×s of the centre frame                 # residual learning

MC-dropout between the residual blocks (Lucas et al., Sec. VI) is off by default and then
costs nothing; ``model.set_mc_dropout(p)`` switches it on for stochastic passes.

Weights are safetensors files whose metadata holds the architecture hyper-parameters
(``vsrpipe.arch = "vsrnet"``, ``vsrpipe.config = <json>``), so a file alone rebuilds its
network: see :func:`save_vsrnet` / :func:`load_vsrnet`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import META_CONFIG, META_NAME, ModelInfo, load_shipped, read_own_weights, write_own_weights
from vsr_pipeline.models.base import shipped_weights  # noqa: F401  (re-exported: tests and tools import it from here)

log = logging.getLogger(__name__)

ARCH = "vsrnet"


@dataclass(frozen=True)
class VSRNetConfig:
    """Architecture hyper-parameters of :class:`VSRNet`."""

    scale: int = 4  # native upscaling factor (pixel shuffle factor)
    frames: int = 5  # input frames per window; the target is the centre one
    channels: int = 3  # image channels in and out (RGB)
    features: int = 64  # feature channels at LR resolution
    blocks: int = 4  # residual blocks, two 3x3 convs each

    @classmethod
    def from_json(cls, text: str) -> VSRNetConfig:
        """Rebuild a config from :meth:`to_json` output; unknown keys are an error."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown VSRNet config keys {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


class MCDropout(nn.Module):
    """Element-wise dropout that is active only when switched on, in train *and* eval mode.

    ``p is None`` or ``p == 0``: the identity (no copy, no random numbers), so the switch is
    free when off. ``p > 0``: ``F.dropout(x, p, training=True)`` — a stochastic pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self.p: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F, H, W) -> same
        if not self.p:
            return x
        return F.dropout(x, self.p, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 plus identity skip: (B, F, H, W) -> (B, F, H, W)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class VSRNet(nn.Module):
    """Five-frame VSR network: (B, T, C, H, W) in [0, 1] -> centre frame (B, C, sH, sW).

    ``info`` follows the model protocol of :mod:`vsr_pipeline.models.base`.
    """

    def __init__(self, config: VSRNetConfig = VSRNetConfig(), name: str | None = None) -> None:
        super().__init__()
        if config.scale < 1 or config.frames < 1 or config.frames % 2 == 0:
            raise ValueError(f"VSRNet needs scale >= 1 and an odd number of frames, got {config}")
        self.config = config
        c, f, s = config.channels, config.features, config.scale
        self.info = ModelInfo(
            name=name or f"vsrnet-x{s}", scale=s, frames=config.frames, channels=c, supports_dropout=True
        )
        self.head = nn.Conv2d(config.frames * c, f, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(f) for _ in range(config.blocks))
        self.drops = nn.ModuleList(MCDropout() for _ in range(config.blocks))
        self.tail = nn.Conv2d(f, c * s * s, 3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # Small last convs make every residual block, and the whole net, start close to the
        # identity / bicubic: training is then stable at a high learning rate.
        for block in self.blocks:
            nn.init.kaiming_normal_(block.conv1.weight, nonlinearity="relu")
            block.conv1.weight.data *= 0.1
            nn.init.zeros_(block.conv1.bias)
            nn.init.kaiming_normal_(block.conv2.weight, nonlinearity="relu")
            block.conv2.weight.data *= 0.1
            nn.init.zeros_(block.conv2.bias)
        nn.init.kaiming_normal_(self.head.weight, nonlinearity="relu")
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def set_mc_dropout(self, p: float | None) -> None:
        """Switch MC-dropout between the residual blocks on (``0 < p < 1``) or off (None/0).

        While on, every forward pass is stochastic even in eval mode (Lucas et al. run 50
        such passes with p = 0.0005 and take the per-pixel variance).
        """
        if p is not None and not (0.0 <= p < 1.0):
            raise ValueError(f"MC-dropout rate must be in [0, 1), got {p}")
        for drop in self.drops:
            drop.p = p

    @property
    def mc_dropout(self) -> float | None:
        """The MC-dropout rate in force (None when off)."""
        return self.drops[0].p if len(self.drops) else None

    def forward(self, x: torch.Tensor, out_scale: float | None = None) -> torch.Tensor:
        """Upscale the centre frame of each window.

        Args:
            x: (B, T, C, H, W) float in [0, 1], T = ``config.frames``.
            out_scale: output scale if not the native one (e.g. 3 from a ×4 net): the ×s
                output is resized with MATLAB bicubic to ceil(out_scale·H) × ceil(out_scale·W).

        Returns:
            (B, C, sH, sW) (or the ``out_scale`` size); not clamped to [0, 1].
        """
        b, t, c, h, w = x.shape
        cfg = self.config
        if t != cfg.frames or c != cfg.channels:
            raise ValueError(f"{self.info.name} expects windows (B, {cfg.frames}, {cfg.channels}, H, W), got {tuple(x.shape)}")
        centre = x[:, t // 2]  # (B, C, H, W)
        feat = F.relu(self.head(x.reshape(b, t * c, h, w)), inplace=True)  # (B, F, H, W)
        y = feat
        for block, drop in zip(self.blocks, self.drops):
            y = drop(block(y))  # (B, F, H, W)
        y = self.tail(y + feat)  # (B, C·s², H, W)
        y = F.pixel_shuffle(y, cfg.scale)  # (B, C, sH, sW)
        y = y + imresize(centre, scale=cfg.scale)  # residual over the bicubic upsample
        if out_scale is not None and out_scale != cfg.scale:
            out = (math.ceil(out_scale * h - 1e-9), math.ceil(out_scale * w - 1e-9))
            y = imresize(y, scale=out_scale / cfg.scale, out_shape=out)
        return y


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_output_pixel(config: VSRNetConfig) -> float:
    """Floating-point operations per HR output pixel (one multiply-add = 2 FLOPs).

    Counts the convolutions (weights and biases), the residual additions and the separable
    bicubic upsample (4 taps per axis and channel); ReLU and the pixel shuffle are free.
    """
    c, f, s, t = config.channels, config.features, config.scale, config.frames
    per_lr = 0.0
    per_lr += 2 * 9 * t * c * f + f  # head conv
    per_lr += config.blocks * (2 * (2 * 9 * f * f + f) + f)  # two convs + skip add per block
    per_lr += f  # long skip
    per_lr += 2 * 9 * f * c * s * s + c * s * s  # tail conv
    per_hr = per_lr / (s * s)
    per_hr += c * (2 * 4 * 2 + 1) + c  # bicubic: 4 taps per axis, both axes; residual add
    return per_hr


# ----------------------------------------------------------------------------- weights I/O


def save_vsrnet(model: VSRNet, path: Path | str, *, name: str | None = None, extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s weights to a self-describing safetensors file (atomic rename).

    The metadata holds ``vsrpipe.arch``, ``vsrpipe.config`` (JSON of :class:`VSRNetConfig`),
    ``vsrpipe.name`` and any ``extra`` string pairs (e.g. the training command).
    """
    write_own_weights(path, model, ARCH, model.config.to_json(), name or model.info.name, extra)


def read_metadata(path: Path | str) -> dict[str, str]:
    """The safetensors header metadata of ``path`` (an empty dict when there is none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_vsrnet(path: Path | str, *, name: str | None = None, expected_scale: int | None = None) -> VSRNet:
    """Build a :class:`VSRNet` from a safetensors file written by :func:`save_vsrnet`.

    Raises :class:`ModelError` (one sentence naming the file) when the file is missing, is
    not a readable safetensors file, is not a vsrnet file, does not match its config, or has
    a scale other than ``expected_scale``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Weights file {str(path)!r} does not exist; reinstall vsr-pipeline or pass an existing file.")
    state, meta = read_own_weights(path, ARCH)
    try:
        config = VSRNetConfig.from_json(meta[META_CONFIG])
        model = VSRNet(config, name=name or meta.get(META_NAME) or path.stem)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"Weights file {str(path)!r} does not match its vsrnet config ({exc}); it may be corrupt.") from exc
    if expected_scale is not None and config.scale != expected_scale:
        raise ModelError(f"Weights file {str(path)!r} is a x{config.scale} network, but x{expected_scale} was expected.")
    return model.eval()


def build_shipped(filename: str, name: str, scale: int) -> VSRNet:
    """Load the shipped weights ``models/weights/<filename>`` as model ``name`` (native ``scale``)."""
    return load_shipped(filename, name, lambda path: load_vsrnet(path, name=name, expected_scale=scale))
