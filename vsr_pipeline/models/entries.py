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

def _shipped(name: str, description: str) -> ModelEntry:
    """The entry of a vsrnet ×4 network whose weights ship as ``models/weights/<name>.safetensors``."""
    builder = LazyBuilder("vsr_pipeline.models.vsrnet:build_shipped", f"{name}.safetensors", name, 4)
    return ModelEntry(name=name, scale=4, frames=5, description=description, build=builder, supports_dropout=True)


VSRNET_X4 = _shipped("vsrnet-x4", "five-frame VSR network trained here, MSE loss, bicubic x4 degradation")
VSRNET_X4_GAN = _shipped("vsrnet-x4-gan", "vsrnet-x4 fine-tuned with GAN + perceptual loss (sharper, with GAN artifacts)")
COMPACT_X4_GAN = ModelEntry(
    name="compact-x4-gan",
    scale=4,
    frames=1,
    description="SRVGGNetCompact (Real-ESRGAN Compact) x4 GAN trained here, single image; a spandrel-format .pth",
    build=LazyBuilder("vsr_pipeline.models.community:build_shipped", "compact-x4-gan.pth", "compact-x4-gan", 4),
)
