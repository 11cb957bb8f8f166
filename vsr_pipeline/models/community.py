"""Loading a user's weights file: our own vsrnet safetensors, or a community SR model via spandrel.

``--model path/to/file.pth|.pt|.ckpt|.safetensors`` ends up in :func:`load_weights_file`:

* a ``.safetensors`` file whose metadata names ``vsrpipe.arch = vsrnet`` (or ``vdsr``) is one
  of ours and is rebuilt as :class:`~vsr_pipeline.models.vsrnet.VSRNet` (or
  :class:`~vsr_pipeline.models.vdsr.VDSR`, at the requested scale);
* anything else is read as a plain state dict — safetensors, or ``torch.load`` with
  ``weights_only=True`` (a pickle that names any callable or class is refused, so loading
  never executes code; TorchScript archives are refused for the same reason) — and handed
  to spandrel, which recognises the architecture from the tensor names and shapes
  (ESRGAN, Real-ESRGAN, SRVGGNetCompact, SwinIR, …).

A community single-image model is wrapped in :class:`SpandrelModel`, which follows the
model protocol: it takes windows (B, T, C, H, W), uses the centre frame (the runner hands
single-image models ``T = 1``) and returns (B, C, sH, sW).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import stat
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import META_ARCH, ModelInfo, centre_frame, load_shipped, read_safetensors

log = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


def pad_to_grid(image: torch.Tensor, multiple_of: int, *, minimum: int = 0, square: bool = False) -> torch.Tensor:
    """``image`` (…, H, W) padded at the bottom and right (reflect; replicate where the pad is not smaller than the
    image) to at least ``minimum``, square if asked, and a multiple of ``multiple_of``: crop the output back."""
    h, w = image.shape[-2:]
    th, tw = max(h, minimum), max(w, minimum)
    if square:
        th = tw = max(th, tw)
    th, tw = -(-th // multiple_of) * multiple_of, -(-tw // multiple_of) * multiple_of
    if (th, tw) == (h, w):
        return image
    mode = "reflect" if th - h < h and tw - w < w else "replicate"
    return F.pad(image, (0, tw - w, 0, th - h), mode=mode)


class SpandrelModel(nn.Module):
    """A spandrel ``ImageModelDescriptor`` as a protocol model: (B, T, C, H, W) -> (B, C, sH, sW).

    Runs the wrapped network on the window's centre frame, padding H and W (reflect) to
    the architecture's size requirements and cropping the output back — whole frames and
    the runner's tiles alike, so any tile size works. The output is not clamped and
    gradients flow (test-time adaptation tunes ``self.net``). spandrel's ``supports_half``,
    ``multiple_of`` and ``tiling`` (``ModelTiling`` lower-cased) go into ``info`` for the runner.
    """

    def __init__(self, descriptor, name: str) -> None:
        super().__init__()
        self.net = descriptor.model  # registered as a submodule: .to(), .parameters() work
        self.architecture = descriptor.architecture.name
        self._call_fn = getattr(descriptor, "_call_fn", None)
        req = descriptor.size_requirements
        self.multiple_of, self.minimum, self.square = req.multiple_of, req.minimum, req.square
        self.info = ModelInfo(
            name=name, scale=int(descriptor.scale), frames=1, channels=int(descriptor.input_channels), supports_dropout=False,
            supports_half=bool(descriptor.supports_half), multiple_of=int(req.multiple_of), tiling=descriptor.tiling.name.lower(),
        )
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = centre_frame(x)  # (B, C, H, W)
        h, w = image.shape[-2:]
        image = pad_to_grid(image, self.multiple_of, minimum=self.minimum, square=self.square)
        out = self._call_fn(self.net, image) if self._call_fn is not None else self.net(image)
        s = self.info.scale
        return out[..., : h * s, : w * s]

    def extra_repr(self) -> str:
        return f"architecture={self.architecture}, scale={self.info.scale}"


def _read_torch_state(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with every failure mapped to one ModelError sentence."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # a pickle of code names a dotted callable or class ("GLOBAL posix.system"); most text files
        # that start with "c" (pickle's GLOBAL opcode) do not
        found = re.search(r"GLOBAL ([A-Za-z_][\w.]*\.[A-Za-z_]\w*)\b", str(exc))
        if found:  # the pickle names a callable or class: loading it would run code
            raise ModelError(
                f"Weights file {str(path)!r} was refused: it pickles code or objects ({found.group(1)}), not just tensors; "
                "only plain state dicts and .safetensors files are loaded."
            ) from None
        raise _unreadable(path) from None
    except Exception as exc:  # the unpickler fails on arbitrary bytes in many ways (IndexError, KeyError, ...)
        if "torchscript" in str(exc).lower() or "constants.pkl" in str(exc):
            raise ModelError(f"Weights file {str(path)!r} is a TorchScript archive, which holds code; export a state dict instead.") from None
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception | None = None) -> ModelError:
    """The sentence for a file ``torch.load`` cannot read: text, or corrupt (with the reader's reason when it has one)."""
    head = text_head(path)
    if head is not None:
        what = "a Git LFS pointer (fetch the real file with `git lfs pull`)" if head.startswith("version https://git-lfs") else "a text file"
        return ModelError(f"Weights file {str(path)!r} is {what}, not a PyTorch weights file; it cannot be read as a model.")
    reason = f" ({exc})" if exc is not None and str(exc) else ""
    return ModelError(f"Weights file {str(path)!r} is corrupt or not a PyTorch weights file{reason}.")


def text_head(path: Path, probe: int = 4096) -> str | None:
    """The start of ``path`` when it is UTF-8 text without control characters (no weights or ONNX file is), else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(probe)
    except OSError:
        return None
    if not head or any(b < 0x20 and b not in b"\t\n\r\f" for b in head) or b"\x7f" in head:
        return None
    return head.decode("utf-8", errors="ignore") if _utf8(head, cut=len(head) == probe) else None


def _utf8(data: bytes, cut: bool) -> bool:
    """True when ``data`` is UTF-8 (``cut``: its last character may be cut off)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return cut and exc.start >= len(data) - 3
    return True


def _tensor_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap the usual containers (spandrel's rules) and keep only the tensors."""
    from spandrel import canonicalize_state_dict

    if not isinstance(obj, dict):
        raise ModelError(f"Weights file {str(path)!r} holds a {type(obj).__name__}, not a state dict of tensors.")
    state = canonicalize_state_dict(obj)
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not tensors:
        raise ModelError(f"Weights file {str(path)!r} holds no weight tensors.")
    return tensors


def not_a_weights_file(path: Path) -> str | None:
    """What is wrong with ``path`` as a weights file ("is a folder", "does not exist", ...), None for a regular file.

    Only ``stat`` is used: a fifo or a device is never opened (reading one would block or never end).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "is a symbolic link to a missing file; check the path"
        return "does not exist; check the path, or run `vsrpipe models` for the registered model names"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (fifo)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "not a regular file"
    return f"is {kind}, not a weights file; give a .pth, .safetensors, .onnx or ncnn .param file" if kind[0] == "a" else f"is {kind}"


def load_weights_file(path: Path, *, expected_scale: int | None = None, scale: float | None = None) -> nn.Module:
    """Load a weights file as a protocol model, never executing code from it.

    Args:
        path: a ``.safetensors``, ``.pth``, ``.pt`` or ``.ckpt`` file.
        expected_scale: if given, a model of another native scale is refused.
        scale: the requested output scale; a model that serves any scale (our pre-upsampling
            ``vdsr`` files) is built at it, the others ignore it (the runner resizes).

    Returns:
        :class:`~vsr_pipeline.models.vsrnet.VSRNet` or :class:`~vsr_pipeline.models.vdsr.VDSR`
        for our own files, else a :class:`SpandrelModel` named after the file stem, in eval
        mode on the CPU.

    Raises:
        ModelError: missing file, unsupported suffix, corrupt file, pickled code, unknown
            architecture, a model that is not RGB image SR, or the wrong scale.
    """
    path = Path(path)
    problem = not_a_weights_file(path)
    if problem is not None:
        raise ModelError(f"--model {str(path)!r} {problem}.")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        state, meta = read_safetensors(path)
        from vsr_pipeline.models.vdsr import ARCH as VDSR_ARCH
        from vsr_pipeline.models.vdsr import load_vdsr
        from vsr_pipeline.models.vsrnet import ARCH, load_vsrnet

        if meta.get(META_ARCH) == ARCH:
            return load_vsrnet(path, name=path.stem, expected_scale=expected_scale)
        if meta.get(META_ARCH) == VDSR_ARCH:  # pre-upsampling: runs natively at the requested scale
            return load_vdsr(path, scale=scale, name=path.stem)
    elif suffix in TORCH_SUFFIXES:
        state = _read_torch_state(path)
    else:
        raise ModelError(f"Weights file {str(path)!r} has an unsupported type; use a .pth, .pt, .ckpt or .safetensors file.")

    import spandrel

    tensors = _tensor_dict(state, path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(tensors)
    except spandrel.UnsupportedModelError:
        raise ModelError(
            f"Weights file {str(path)!r} is of an unknown architecture; spandrel does not recognise it "
            "(see spandrel's list of supported single-image SR architectures)."
        ) from None
    except Exception as exc:  # spandrel raises assorted errors on inconsistent state dicts
        raise ModelError(f"Weights file {str(path)!r} could not be loaded by spandrel ({type(exc).__name__}: {exc}); it may be corrupt.") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelError(f"Weights file {str(path)!r} is a {descriptor.architecture.name} model, which is not an image super-resolution model.")
    if descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise ModelError(
            f"Weights file {str(path)!r} is a {descriptor.input_channels}-to-{descriptor.output_channels}-channel "
            f"{descriptor.architecture.name} model; only RGB (3-channel) models are supported."
        )
    if expected_scale is not None and descriptor.scale != expected_scale:
        raise ModelError(f"Weights file {str(path)!r} is a x{descriptor.scale} {descriptor.architecture.name} model, but x{expected_scale} was expected.")
    log.info(
        "loaded %s as %s x%d (fp16: %s, tiling: %s)", path, descriptor.architecture.name, descriptor.scale,
        "yes" if descriptor.supports_half else "no", descriptor.tiling.name.lower(),
    )
    return SpandrelModel(descriptor, name=path.stem)


def build_shipped(filename: str, name: str, scale: int) -> SpandrelModel:
    """Load the shipped community-format weights ``models/weights/<filename>`` as model ``name`` (native ``scale``)."""
    import dataclasses

    model = load_shipped(filename, name, lambda path: load_weights_file(path, expected_scale=scale))
    model.info = dataclasses.replace(model.info, name=name)
    return model
