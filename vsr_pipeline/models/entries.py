"""The built-in model entries, registered through this project's own pyproject.toml.

Listing models (``vsrpipe models``) reads these entries without importing torch: each
``build`` is a :class:`LazyBuilder` that imports its architecture only when the model is
built. A third-party plugin registers its own :class:`~vsr_pipeline.models.base.ModelEntry`
the same way (see plugins/vsrpipe-example-plugin).
"""

from __future__ import annotations

import importlib

from vsr_pipeline.models.base import ModelEntry


class LazyBuilder:
    """Picklable ``build`` callable: ``module:function`` called with fixed arguments plus the caller's."""

    def __init__(self, target: str, *args, **kwargs) -> None:
        self.target, self.args, self.kwargs = target, args, kwargs

    def __call__(self, **kwargs):
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(*self.args, **{**self.kwargs, **kwargs})

    def __repr__(self) -> str:
        return f"LazyBuilder({self.target!r})"


BICUBIC = ModelEntry(
    name="bicubic",
    scale=4,
    frames=1,
    description="MATLAB-compatible bicubic interpolation (any scale; the baseline)",
    build=LazyBuilder("vsr_pipeline.models.bicubic:Bicubic"),
    any_scale=True,
)

VSRNET_X4 = ModelEntry(
    name="vsrnet-x4",
    scale=4,
    frames=5,
    description="five-frame VSR network trained here, MSE loss, bicubic x4 degradation",
    build=LazyBuilder("vsr_pipeline.models.vsrnet:build_shipped", "vsrnet-x4.safetensors", "vsrnet-x4", 4),
    supports_dropout=True,
)

VSRNET_X4_GAN = ModelEntry(
    name="vsrnet-x4-gan",
    scale=4,
    frames=5,
    description="vsrnet-x4 fine-tuned with GAN + perceptual loss (sharper, with GAN artifacts)",
    build=LazyBuilder("vsr_pipeline.models.vsrnet:build_shipped", "vsrnet-x4-gan.safetensors", "vsrnet-x4-gan", 4),
    supports_dropout=True,
)
