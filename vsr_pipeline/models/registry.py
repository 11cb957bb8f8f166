"""Model discovery through the entry-point group ``vsr_pipeline.models``.

Built-in models are registered by this project's own pyproject.toml, exactly as a
third-party package would register its own. Setting ``VSRPIPE_DISABLE_PLUGIN_AUTOLOAD=1``
keeps only the entry points of the ``vsr-pipeline`` distribution itself.

A ``--model`` value that names a file is loaded by the loader of its suffix:
``.pth``/``.safetensors`` through spandrel (:mod:`vsr_pipeline.models.community`), an ncnn
``.param`` graph with the ``.bin`` beside it (:mod:`vsr_pipeline.models.ncnn`) and an ONNX
graph (:mod:`vsr_pipeline.models.onnx_file`).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import ModelEntry, check_finite_weights

if TYPE_CHECKING:  # `vsrpipe models` lists entries without importing torch
    import torch

log = logging.getLogger(__name__)

GROUP = "vsr_pipeline.models"
OWN_DISTRIBUTION = "vsr-pipeline"
DISABLE_ENV = "VSRPIPE_DISABLE_PLUGIN_AUTOLOAD"
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".param", ".onnx")
FILE_LOADERS = {  # suffix -> "module:function" taking (path, *, scale) and returning a protocol model
    ".param": "vsr_pipeline.models.ncnn:load_param_file",
    ".onnx": "vsr_pipeline.models.onnx_file:load_onnx_file",
}


@dataclass(frozen=True)
class Registered:
    """A discovered model entry and the distribution that registered it."""

    entry: ModelEntry
    package: str  # distribution name, e.g. "vsr-pipeline"


def _plugins_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "unknown"


def available_models() -> dict[str, Registered]:
    """Discover the registered models.

    Returns a dict name -> :class:`Registered`, sorted by name. A plugin whose entry point
    fails to import is skipped with a warning; it never breaks the built-ins.
    """
    found: dict[str, Registered] = {}
    disabled = _plugins_disabled()
    for ep in metadata.entry_points(group=GROUP):
        package = _dist_name(ep)
        if disabled and package.replace("_", "-").lower() != OWN_DISTRIBUTION:
            continue
        try:
            entry = ep.load()
        except Exception as exc:  # a broken plugin must not break the tool
            log.warning("model plugin %r from %s failed to load: %s", ep.name, package, exc)
            continue
        if not isinstance(entry, ModelEntry):
            log.warning("model plugin %r from %s is not a ModelEntry; skipped", ep.name, package)
            continue
        if entry.name in found and found[entry.name].package == OWN_DISTRIBUTION:
            log.warning("plugin %s tries to replace built-in model %r; ignored", package, entry.name)
            continue
        found[entry.name] = Registered(entry=entry, package=package)
    return dict(sorted(found.items()))


def is_weights_path(name: str) -> bool:
    """True when ``--model`` names a weights file rather than a registered model."""
    return name.lower().endswith(WEIGHT_SUFFIXES) or os.sep in name


COMPANIONS = {".param": (".bin",)}  # files a weights file's loader also reads, beside it


def model_identity(name: str) -> list:
    """What identifies the weights ``--model name`` loads, for settings hashes: a file's (and its companions')
    size and modification time, or a registered name's distributions and their versions."""
    path = Path(name)
    if path.is_file():
        files = [path, *(path.with_suffix(s) for s in COMPANIONS.get(path.suffix.lower(), ()))]
        return [[f.name, *((f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else ("missing",))] for f in files]
    return [list(pair) for pair in _registered_identity(name)]


@functools.lru_cache(maxsize=None)
def _registered_identity(name: str) -> tuple[tuple[str, str], ...]:
    """(distribution, version) of the packages a registered model comes from; read once per process (a batch
    hashes its settings for every input, and discovering the entry points imports every plugin)."""
    found = available_models().get(name)
    if found is None:
        return ()
    ident = []
    for dist in dict.fromkeys(d for d in (found.package, found.entry.requires) if d):
        try:
            ident.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            ident.append((dist, "missing"))
    return tuple(ident)


def load_model(name: str, *, scale: float | None = None) -> "torch.nn.Module":
    """Build the model called ``name`` (a registry name or a weights file path).

    ``scale`` is the requested output scale; models that serve any scale natively are
    built at it, the others are built at their native scale (the runner resizes).
    Raises :class:`ModelError` with the list of known names when ``name`` is unknown, and
    for weights that hold NaN or infinity.
    """
    model = _build(name, scale)
    check_finite_weights(model, name)
    return model


def _build(name: str, scale: float | None) -> "torch.nn.Module":
    """The module ``name`` stands for, unchecked (see :func:`load_model`)."""
    if is_weights_path(name):
        target = FILE_LOADERS.get(Path(name).suffix.lower())
        if target is not None:
            import importlib

            module, _, function = target.partition(":")
            return getattr(importlib.import_module(module), function)(Path(name), scale=scale)
        from vsr_pipeline.models.community import load_weights_file

        return load_weights_file(Path(name), scale=scale)
    models = available_models()
    if name not in models and os.path.lexists(name):  # a folder, fifo, ... named without a path separator
        from vsr_pipeline.models.community import load_weights_file

        return load_weights_file(Path(name))
    if name not in models:
        known = ", ".join(models) or "none"
        raise ModelError(f"Unknown model {name!r}; available models: {known} (or a path to a .pth, .safetensors, .onnx or ncnn .param file).")
    entry = models[name].entry
    try:
        if entry.any_scale and scale is not None:
            return entry.build(scale=scale)
        return entry.build()
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"Model {name!r} could not be built: {exc}") from exc
