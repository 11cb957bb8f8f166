"""Image quality metrics as SR papers compute them: PSNR/SSIM on the Y channel, LPIPS, ST-LPIPS.

Inputs are RGB images in [0, data_range]: torch tensors (C, H, W) or (B, C, H, W), or numpy
arrays (H, W, C) / (H, W). A single image gives a float; a batch gives a float64 tensor
(B,) of per-image values.

* Y channel: BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it,
  ``Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255`` for RGB in [0, 1].
* ``crop``: pixels removed from every border before measuring (SR papers crop the scale).
* SSIM: Wang et al. with an 11×11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population covariances, averaged over the positions where the window fits inside the
  image; identical to ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=255)`` on Y in [0, 255]. With
  ``y_channel=False`` it is the mean of the per-channel SSIMs.
* No rounding to 8 bits is done: quantise both images first to reproduce papers exactly.

LPIPS (Zhang et al. 2018) and ST-LPIPS (Ghildyal & Liu 2022, shift-tolerant LPIPS) are
different metrics and are always labelled separately. Both are loaded without any network
access: :func:`load_lpips` needs the torchvision backbone weights on disk, ST-LPIPS ships
its full weights inside the ``stlpips-pytorch`` package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsr_pipeline.errors import ConfigError

__all__ = [
    "psnr",
    "ssim",
    "rgb_to_y",
    "PerceptualMetric",
    "load_lpips",
    "load_stlpips",
    "load_perceptual_metric",
    "LPIPS_BACKBONE_FILES",
]

log = logging.getLogger(__name__)

# torchvision's file names for the ImageNet backbones LPIPS builds on (torch hub cache names).
LPIPS_BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
_NET_LABEL = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet"}

_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate = 3.5 -> 11×11 window
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


# --------------------------------------------------------------------------- conversion


def _as_batch(x: torch.Tensor | np.ndarray, data_range: float, what: str) -> tuple[torch.Tensor, bool]:
    """Return (B, C, H, W) float64 scaled to [0, 1], and whether the input was a single image."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "iu" and data_range == 1.0:
            raise ValueError(f"{what}: got an integer {x.dtype} image; pass data_range=255 (or the bit depth's maximum)")
        t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64)
        if t.ndim == 2:
            t = t[None, None]  # (1, 1, H, W)
        elif t.ndim == 3:
            t = t.permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
        else:
            raise ValueError(f"{what}: a numpy image must be (H, W) or (H, W, C), got shape {x.shape}")
        single = True
    elif torch.is_tensor(x):
        t = x.detach().to(torch.float64)
        if t.ndim == 3:
            t, single = t[None], True
        elif t.ndim == 4:
            single = False
        else:
            raise ValueError(f"{what}: a tensor must be (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    else:
        raise TypeError(f"{what}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"{what}: data_range must be positive, got {data_range!r}")
    return t / data_range, single


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB in [0, 1] (MATLAB ``rgb2ycbcr``): (..., 3, H, W) -> (..., 1, H, W) in [16/255, 235/255]."""
    r, g, b = rgb[..., 0:1, :, :], rgb[..., 1:2, :, :], rgb[..., 2:3, :, :]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepare(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    crop: int,
    y_channel: bool,
    data_range: float,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    ta, single = _as_batch(a, data_range, what)
    tb, _ = _as_batch(b, data_range, what)
    if ta.shape != tb.shape:
        raise ValueError(f"{what}: the images differ in shape, {tuple(ta.shape)} vs {tuple(tb.shape)}")
    if y_channel:
        if ta.shape[1] == 3:
            ta, tb = rgb_to_y(ta), rgb_to_y(tb)
        elif ta.shape[1] != 1:
            raise ValueError(f"{what}: y_channel needs RGB (3 channels) or luma (1), got {ta.shape[1]} channels")
    crop = int(crop)
    if crop < 0:
        raise ValueError(f"{what}: crop must be >= 0, got {crop}")
    if crop:
        h, w = ta.shape[-2:]
        if 2 * crop >= min(h, w):
            raise ValueError(f"{what}: crop={crop} leaves nothing of a {h}×{w} image")
        ta = ta[..., crop:-crop, crop:-crop]
        tb = tb[..., crop:-crop, crop:-crop]
    return ta, tb, single


def _result(values: torch.Tensor, single: bool) -> float | torch.Tensor:
    return float(values[0]) if single else values


# --------------------------------------------------------------------------- PSNR / SSIM


def psnr(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    *,
    crop: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB between ``a`` and ``b`` (symmetric).

    Args:
        a, b: RGB (or 1-channel) images of equal shape: (C, H, W) / (B, C, H, W) tensors or
            (H, W, C) / (H, W) numpy arrays, values in [0, data_range].
        crop: border pixels removed on each side first.
        y_channel: measure on BT.601 Y (SR convention); False measures all channels.
        data_range: the value of white (1.0 for float frames, 255 for uint8).

    Returns:
        float for one image, float64 tensor (B,) for a batch; ``inf`` where equal.
    """
    ta, tb, single = _prepare(a, b, crop, y_channel, data_range, "psnr")
    mse = (ta - tb).pow(2).mean(dim=(1, 2, 3))  # (B,)
    return _result(10.0 * torch.log10(1.0 / mse), single)


def _gaussian_window() -> torch.Tensor:
    r = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-(r**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()  # (11,)


def ssim(
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    *,
    crop: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
) -> float | torch.Tensor:
    """Structural similarity (Gaussian 11×11, sigma 1.5) between ``a`` and ``b``.

    Same arguments and return shapes as :func:`psnr`. The image must be at least 11×11
    after cropping.
    """
    ta, tb, single = _prepare(a, b, crop, y_channel, data_range, "ssim")
    n, c, h, w = ta.shape
    size = 2 * _SSIM_RADIUS + 1
    if h < size or w < size:
        raise ValueError(f"ssim: the image ({h}×{w} after cropping) is smaller than the 11×11 window")
    g = _gaussian_window()
    wv = g.view(1, 1, size, 1).expand(c, 1, size, 1)
    wh = g.view(1, 1, 1, size).expand(c, 1, 1, size)

    def filt(t: torch.Tensor) -> torch.Tensor:
        # 'valid' filtering = skimage's result cropped by the window radius
        return F.conv2d(F.conv2d(t, wv, groups=c), wh, groups=c)

    mu_a, mu_b = filt(ta), filt(tb)
    var_a = filt(ta * ta) - mu_a**2
    var_b = filt(tb * tb) - mu_b**2
    cov = filt(ta * tb) - mu_a * mu_b
    c1, c2 = _SSIM_K1**2, _SSIM_K2**2  # data range is 1 after scaling
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return _result(s.mean(dim=(1, 2, 3)), single)


# --------------------------------------------------------------------------- perceptual


class PerceptualMetric:
    """A learned perceptual distance (lower is more similar) with an availability status.

    ``name`` labels it in tables ("LPIPS (AlexNet)", "ST-LPIPS (AlexNet)"); ``available``
    says whether it can be computed and ``reason`` why not. Calling an unavailable metric
    raises ``ConfigError`` with that reason.
    """

    def __init__(self, name: str, model: torch.nn.Module | None = None, reason: str = "") -> None:
        self.name = name
        self._model = model
        self.reason = "" if model is not None else (reason or "not loaded")

    @property
    def available(self) -> bool:
        """True when the metric's network is loaded."""
        return self._model is not None

    def to(self, device: torch.device | str) -> PerceptualMetric:
        """Move the network to ``device`` (in place) and return self."""
        if self._model is not None:
            self._model.to(device)
        return self

    def __call__(self, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float | torch.Tensor:
        """Distance between RGB images in [0, 1]: (3, H, W) / (B, 3, H, W) tensors or (H, W, 3) arrays.

        Returns a float for one image, a float64 tensor (B,) for a batch.
        """
        if self._model is None:
            raise ConfigError(f"{self.name} is unavailable: {self.reason}.")
        ta, single = _as_batch(a, 1.0, self.name)
        tb, _ = _as_batch(b, 1.0, self.name)
        if ta.shape != tb.shape or ta.shape[1] != 3:
            raise ValueError(f"{self.name}: needs two RGB images of equal shape, got {tuple(ta.shape)} and {tuple(tb.shape)}")
        p = next(self._model.parameters())
        with torch.inference_mode():
            d = self._model(ta.to(p.device, p.dtype), tb.to(p.device, p.dtype), normalize=True)  # (B, 1, 1, 1)
        return _result(d.reshape(-1).to("cpu", torch.float64), single)

    def __repr__(self) -> str:
        state = "available" if self.available else f"unavailable: {self.reason}"
        return f"PerceptualMetric({self.name!r}, {state})"


def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model


def _load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError("it does not hold a state dict of tensors")
    return sd


def load_lpips(net: str = "alex", weights_path: str | os.PathLike[str] | None = None) -> PerceptualMetric:
    """LPIPS v0.1 with the given backbone, built without any download.

    The ImageNet backbone weights come from ``weights_path`` or, when that is None, from
    torch's hub cache (``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` for
    ``net='alex'``); the linear calibration layers ship with the ``lpips`` package. When
    anything is missing the returned metric has ``available=False`` and a ``reason``.
    """
    label = f"LPIPS ({_NET_LABEL.get(net, net)})"
    if net not in LPIPS_BACKBONE_FILES:
        return PerceptualMetric(label, reason=f"unknown LPIPS backbone '{net}' (use alex, vgg or squeeze)")
    if weights_path is None:
        path = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]
        hint = "no download is attempted; put the torchvision weights there or pass --lpips-weights"
    else:
        path = Path(weights_path)
        hint = "check the --lpips-weights path"
    if not path.is_file():
        return PerceptualMetric(label, reason=f"backbone weights not found at {path} ({hint})")
    try:
        lpips = importlib.import_module("lpips")
    except ImportError as exc:
        return PerceptualMetric(label, reason=f"the lpips package is not installed ({exc})")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained is deprecated' noise
        # pretrained=False, pnet_rand=True: neither lpips nor torchvision reads or downloads weights.
        model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)

    lin_file = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    try:
        lin_sd = _load_state_dict_file(lin_file)
        missing = [k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.") and k not in lin_sd]
        if missing:
            raise ValueError(f"it lacks {missing[0]}")
        model.load_state_dict(lin_sd, strict=False)
    except Exception as exc:  # noqa: BLE001 - unpickling/key errors all mean 'unusable file'
        return PerceptualMetric(label, reason=f"the lpips package's calibration weights {lin_file} are unusable ({exc})")

    # lpips stores the backbone as net.slice<n>.<i>.* where <i> is torchvision's features.<i>.
    backbone = model.net.state_dict()
    mapping = {f"features.{k.split('.', 1)[1]}": k for k in backbone}
    try:
        sd = _load_state_dict_file(path)
        missing = [tv for tv in mapping if tv not in sd]
        if missing:
            raise ValueError(f"it is not a torchvision {_NET_LABEL[net]} state dict (no {missing[0]})")
        model.net.load_state_dict({mapping[tv]: sd[tv] for tv in mapping}, strict=True)
    except Exception as exc:  # noqa: BLE001 - unpickling/shape errors all mean 'unusable file'
        return PerceptualMetric(label, reason=f"backbone weights {path} are unusable: {exc}")
    log.info("loaded %s with backbone weights %s", label, path)
    return PerceptualMetric(label, _freeze(model))


@contextlib.contextmanager
def _stub_unused_imports(names: dict[str, str]):
    """Provide empty modules for imports a package makes but never uses (removed afterwards)."""
    added = []
    for mod, attr in names.items():
        if mod not in sys.modules and importlib.util.find_spec(mod) is None:
            stub = types.ModuleType(mod)
            setattr(stub, attr, lambda *args, **kwargs: None)
            sys.modules[mod] = stub
            added.append(mod)
    try:
        yield
    finally:
        for mod in added:
            sys.modules.pop(mod, None)


def load_stlpips(net: str = "alex") -> PerceptualMetric:
    """ST-LPIPS (shift-tolerant LPIPS, ``stlpips-pytorch``) with its bundled weights; offline.

    A different metric from LPIPS: its backbone is retrained with anti-aliased pooling, and
    the package ships the whole network, so nothing is read from torch's cache. Returns a
    metric with ``available=False`` and a ``reason`` if the package cannot be loaded.
    """
    label = f"ST-LPIPS ({_NET_LABEL.get(net, net)})"
    if net not in ("alex", "vgg"):
        return PerceptualMetric(label, reason=f"ST-LPIPS ships weights for alex and vgg only, not '{net}'")
    try:
        # The package imports IPython.embed and torchsummary.summary at module level but
        # never calls them; stub them when absent instead of pulling in IPython.
        with _stub_unused_imports({"IPython": "embed", "torchsummary": "summary"}):
            stlpips = importlib.import_module("stlpips_pytorch.stlpips")
    except ImportError as exc:
        return PerceptualMetric(label, reason=f"the stlpips-pytorch package cannot be imported ({exc})")
    wfile = Path(stlpips.__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = stlpips.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
        sd = _load_state_dict_file(wfile)
        # 'lins.*' are aliases of 'lin0..4.*' in the module tree; the file stores the latter.
        missing = [k for k in model.state_dict() if not k.startswith("lins.") and k not in sd]
        if missing:
            raise ValueError(f"it lacks {missing[0]}")
        model.load_state_dict(sd, strict=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the metric is unavailable
        return PerceptualMetric(label, reason=f"its bundled weights {wfile} are unusable ({exc})")
    log.info("loaded %s from %s", label, wfile)
    return PerceptualMetric(label, _freeze(model))


def load_perceptual_metric(
    name: str, *, net: str = "alex", weights_path: str | os.PathLike[str] | None = None
) -> PerceptualMetric:
    """Load ``'lpips'`` or ``'st-lpips'`` by name (``weights_path`` applies to LPIPS only)."""
    key = name.strip().lower().replace("_", "-")
    if key == "lpips":
        return load_lpips(net, weights_path)
    if key in ("st-lpips", "stlpips"):
        return load_stlpips(net)
    raise ConfigError(f"Unknown perceptual metric '{name}'; use lpips or st-lpips.")
