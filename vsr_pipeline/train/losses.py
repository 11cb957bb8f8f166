"""Training losses, each a small ``nn.Module``, plus the patch discriminator for GAN training.

Pixel losses take ``pred, target`` of shape (B, C, H, W) and return a scalar:
:class:`L1Loss`, :class:`MSELoss`, :class:`CharbonnierLoss`.

:class:`PerceptualLoss` is the ST-LPIPS distance (shift-tolerant AlexNet trunk and its
learned linear heads) computed from the weights that the ``stlpips-pytorch`` wheel ships
(``weights/vST0.0/alex_shift_tolerant.pth``), loaded as a plain state dict with
``torch.load(weights_only=True)``: it works offline and needs neither ImageNet weights nor
the stlpips package's own imports.

:class:`PatchDiscriminator` maps an image (B, C, H, W) to a map of real/fake logits
(B, 1, H/8, W/8); :class:`GANLoss` is the non-saturating (BCE-with-logits) loss.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.errors import ConfigError


class L1Loss(nn.Module):
    """Mean absolute error: (B, C, H, W) x 2 -> scalar."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


class MSELoss(nn.Module):
    """Mean squared error: (B, C, H, W) x 2 -> scalar."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


class CharbonnierLoss(nn.Module):
    """mean(sqrt((pred - target)² + eps²)), a smooth L1: (B, C, H, W) x 2 -> scalar."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target) ** 2 + self.eps**2).mean()


PIXEL_LOSSES = {"l1": L1Loss, "mse": MSELoss, "charbonnier": CharbonnierLoss}


def build_pixel_loss(name: str, **kwargs) -> nn.Module:
    """A pixel loss by name: ``l1``, ``mse`` or ``charbonnier``."""
    try:
        return PIXEL_LOSSES[name](**kwargs)
    except KeyError:
        raise ConfigError(f"Unknown pixel loss {name!r}; choose one of {', '.join(PIXEL_LOSSES)}.") from None


# ----------------------------------------------------------------------------- perceptual


def stlpips_alex_weights() -> Path:
    """Path of the shift-tolerant AlexNet LPIPS weights shipped inside ``stlpips-pytorch``."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The perceptual loss needs the stlpips-pytorch package (pip install stlpips-pytorch).")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    if not path.is_file():
        raise ConfigError(f"stlpips-pytorch is installed but its weights file {path} is missing.")
    return path


class BlurPool(nn.Module):
    """Anti-aliased stride-2 subsampling: reflect-pad 2, depthwise 3x3 binomial blur, stride 2.

    (B, C, H, W) -> (B, C, ceil(H/2) + 1, ceil(W/2) + 1); the filter is a buffer ``filt``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantAlexNet(nn.Module):
    """The ST-LPIPS AlexNet trunk; returns the five ReLU feature maps.

    Module names match the ``net.sliceK.N`` keys of the stlpips weights file.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = nn.Sequential()
        self.slice1.add_module("0", nn.Conv2d(3, 64, 11, stride=1, padding=2))
        self.slice1.add_module("1", BlurPool(64))
        self.slice1.add_module("2", nn.ReLU())
        self.slice2 = nn.Sequential()
        self.slice2.add_module("3", nn.MaxPool2d(3, stride=1))
        self.slice2.add_module("4", BlurPool(64))
        self.slice2.add_module("5", nn.Conv2d(64, 192, 5, padding=2))
        self.slice2.add_module("6", nn.ReLU())
        self.slice3 = nn.Sequential()
        self.slice3.add_module("7", nn.MaxPool2d(3, stride=1))
        self.slice3.add_module("8", BlurPool(192))
        self.slice3.add_module("9", nn.Conv2d(192, 384, 3, padding=1))
        self.slice3.add_module("10", nn.ReLU())
        self.slice4 = nn.Sequential()
        self.slice4.add_module("11", nn.Conv2d(384, 256, 3, padding=1))
        self.slice4.add_module("12", nn.ReLU())
        self.slice5 = nn.Sequential()
        self.slice5.add_module("13", nn.Conv2d(256, 256, 3, padding=1))
        self.slice5.add_module("14", nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for sl in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = sl(x)
            feats.append(x)
        return feats


class PerceptualLoss(nn.Module):
    """ST-LPIPS distance as a loss: pred, target (B, 3, H, W) in [0, 1] -> scalar (batch mean).

    Frozen: its parameters never train, but gradients flow to ``pred``. ``layers`` limits the
    sum to the first feature maps (cheaper); the default uses all five, as ST-LPIPS does.
    """

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self, weights: Path | str | None = None, layers: int = 5) -> None:
        super().__init__()
        self.net = ShiftTolerantAlexNet()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.layers = layers
        state = torch.load(str(weights or stlpips_alex_weights()), map_location="cpu", weights_only=True)
        mapped = {}
        for key, value in state.items():
            if key.startswith("net."):
                mapped[key] = value
            elif key.startswith("lin"):  # lin{k}.model.1.weight -> lins.{k}.weight
                mapped[f"lins.{key[3]}.weight"] = value
        mapped["shift"], mapped["scale"] = state["scaling_layer.shift"], state["scaling_layer.scale"]
        self.load_state_dict(mapped, strict=True)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:  # always frozen, always eval
        return super().train(False)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image ST-LPIPS: (B, 3, H, W) x 2 in [0, 1] -> (B,)."""
        a = (2 * pred - 1 - self.shift) / self.scale
        b = (2 * target - 1 - self.shift) / self.scale
        fa, fb = self.net(torch.cat([a, b]))[: self.layers], None
        total = 0.0
        n = pred.shape[0]
        for k, f in enumerate(fa):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            d = (f[:n] - f[n:]) ** 2  # (B, C_k, h, w)
            total = total + self.lins[k](d).mean(dim=(1, 2, 3))
        return total

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.distance(pred, target).mean()


# ----------------------------------------------------------------------------- GAN


class PatchDiscriminator(nn.Module):
    """Fully-convolutional patch discriminator: (B, C, H, W) in [0, 1] -> logits (B, 1, H/8, W/8).

    Three stride-2 4x4 convs with spectral norm and LeakyReLU(0.2), then a 3x3 conv to one
    logit per patch (receptive field about 46 pixels).
    """

    def __init__(self, channels: int = 3, features: int = 64) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        f = features
        self.body = nn.Sequential(
            sn(nn.Conv2d(channels, f, 3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(f, f, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(f, 2 * f, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(2 * f, 4 * f, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * f, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(2 * x - 1)


class GANLoss(nn.Module):
    """Non-saturating GAN loss on logits: ``(logits, is_real) -> scalar``."""

    def forward(self, logits: torch.Tensor, is_real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits, target)


def pgd_perturb(
    model: nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    *,
    eps: float,
    steps: int = 1,
    alpha: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """On-the-fly L∞ PGD perturbation of the LR input (Castillo et al.).

    Starts from uniform noise in [-eps, eps] and takes ``steps`` signed-gradient ascent steps
    of size ``alpha`` (default ``2.5·eps/steps``) on the L1 loss ||model(lr + δ) − hr||₁,
    projecting δ back onto the eps-ball and lr + δ onto [0, 1].

    Args:
        lr: (B, T, C, h, w) LR windows; hr: (B, C, s·h, s·w) targets.

    Returns:
        The perturbed input (B, T, C, h, w), detached. The model's parameter gradients are
        left untouched (``None`` or as they were).
    """
    if eps <= 0:
        return lr
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    delta = (torch.rand(lr.shape, generator=generator, dtype=lr.dtype) * 2 - 1) * eps
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.l1_loss(model((lr + delta).clamp(0, 1)), hr)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
                delta = (lr + delta).clamp(0, 1) - lr
    finally:
        for p, r in zip(params, saved):
            p.requires_grad_(r)
    return (lr + delta).detach()
