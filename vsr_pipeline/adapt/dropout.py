"""MC-dropout for any network: dropout inserted at test time by forward hooks.

Lucas et al. put dropout (p = 0.0005) between the residual blocks of the network. Our own
vsrnet has those layers built in (``set_mc_dropout``). Any other network (a community model
loaded through spandrel, an ncnn graph) gets dropout applied to the outputs of modules
chosen by one rule:

0. **Declared.** A module with a ``residual_sites()`` method names the layers that end its
   residual blocks (an ncnn graph: its additions of two blobs); at least two of them are
   used as they are.
1. **Blocks.** The shallowest ``nn.Sequential``/``nn.ModuleList`` holding at least two
   children of one class that each hold two or more layers with weights — residual
   blocks: RRDB in ESRGAN/RRDBNet, RSTB in SwinIR (a convolution wrapping its activation
   is one layer, not a block). Dropout follows each of them.
2. **Else activations.** The container holding the most activation layers (PReLU,
   LeakyReLU, ReLU, GELU, SiLU): the body of SRVGGNetCompact ("RealESRGAN Compact"), whose
   convolutions are not wrapped in blocks. Dropout follows each activation.

A network with neither cannot host MC-dropout and ``--adapt masked`` refuses it.

**The rate.** The paper's p fits a 64-channel network. With fewer channels per layer the
same p drops almost nothing at most pixels, so the variance map becomes a few isolated
spikes; with more, it drops more than the paper did. The hooks therefore use
``p · 64 / C`` (C: channels of the hooked output), the same expected number of dropped
activations per pixel and site as the paper's setting. vsrnet keeps p as given.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

REFERENCE_CHANNELS = 64  # channels of the network the paper's p was chosen for
ACTIVATIONS = (nn.PReLU, nn.LeakyReLU, nn.ReLU, nn.GELU, nn.SiLU)


def _is_activation(module: nn.Module) -> bool:
    """A torch activation, or a layer of another runtime's graph named like one (an ncnn PReLU)."""
    return isinstance(module, ACTIVATIONS) or type(module).__name__ in {a.__name__ for a in ACTIVATIONS}


@dataclass(frozen=True)
class Sites:
    """Where MC-dropout goes in a network."""

    rule: str  # "native", "blocks" or "activations"
    names: tuple[str, ...]  # qualified module names (empty for native)
    kind: str  # class name of the hooked modules (or of the network for native)


def _containers(net: nn.Module):
    for name, module in net.named_modules():
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            yield name, module


def _weighted_layers(module: nn.Module) -> int:
    """How many modules inside ``module`` (itself included) hold weights of their own."""
    return sum(1 for m in module.modules() if any(True for _ in m.parameters(recurse=False)))


def _declared(model: nn.Module) -> Sites | None:
    for prefix, module in model.named_modules():
        declare = getattr(module, "residual_sites", None)
        if callable(declare):
            names = tuple(f"{prefix}.{n}" if prefix else n for n in declare())
            if len(names) >= 2:
                return Sites("declared", names, type(module).__name__)
    return None


def dropout_sites(model: nn.Module) -> Sites | None:
    """The modules after which MC-dropout goes in ``model`` (see the module doc), or None."""
    if hasattr(model, "set_mc_dropout") and getattr(getattr(model, "info", None), "supports_dropout", False):
        return Sites("native", (), type(model).__name__)
    declared = _declared(model)
    if declared is not None:
        return declared
    best = None  # (depth, -count, name, class name, children names)
    for name, module in _containers(model):
        groups: dict[str, list[str]] = {}
        for child_name, child in module.named_children():
            if any(True for _ in child.children()) and _weighted_layers(child) >= 2:
                groups.setdefault(type(child).__name__, []).append(f"{name}.{child_name}" if name else child_name)
        for kind, names in groups.items():
            if len(names) >= 2:
                key = (name.count(".") + bool(name), -len(names), name, kind, tuple(names))
                best = key if best is None or key < best else best
    if best is not None:
        return Sites("blocks", best[4], best[3])
    acts = None
    for name, module in _containers(model):
        names = tuple(f"{name}.{n}" if name else n for n, c in module.named_children() if _is_activation(c))
        if names and (acts is None or len(names) > len(acts[1])):
            kind = type(dict(module.named_children())[names[0].rsplit(".", 1)[-1]]).__name__
            acts = (kind, names)
    if acts is not None:
        return Sites("activations", acts[1], acts[0])
    return None


def with_mc_dropout(model: nn.Module, p: float) -> nn.Module:
    """A copy of ``model`` (eval mode) whose forward passes drop activations at its :func:`dropout_sites`.

    Native sites (vsrnet) use ``p`` as given; hooked sites use ``p · 64 / C``. Dropout draws
    from torch's global generator, so seeding it makes the passes reproducible.
    """
    sites = dropout_sites(model)
    if sites is None:
        raise ValueError(f"{type(model).__name__} has no place for MC-dropout")
    net = copy.deepcopy(model).eval()
    if sites.rule == "native":
        net.set_mc_dropout(p)
        return net
    modules = dict(net.named_modules())

    def drop(output: torch.Tensor) -> torch.Tensor:
        channels = output.shape[1] if output.ndim == 4 else output.shape[-1]  # (B, C, H, W) or (B, L, C) tokens
        rate = min(0.5, p * REFERENCE_CHANNELS / max(1, channels))
        return F.dropout(output, rate, training=True)

    def hook(module: nn.Module, inputs, output):
        return tuple(drop(t) for t in output) if isinstance(output, tuple) else drop(output)  # ncnn layers return their tops

    for name in sites.names:
        modules[name].register_forward_hook(hook)
    return net
