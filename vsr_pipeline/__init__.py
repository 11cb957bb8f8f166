"""vsrpipe: video super-resolution that adapts its network to each clip at test time.

``vsr_pipeline.enhance(src, dst, **options)`` upscales a file; ``Enhancer`` is the
reusable stage drivers build once. Names are imported on first use, so that importing
the package (and running ``vsrpipe --help``) does not import torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vsr-pipeline")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "enhance": "vsr_pipeline.api",
    "make_config": "vsr_pipeline.api",
    "EnhanceConfig": "vsr_pipeline.config",
    "StageConfig": "vsr_pipeline.config",
    "RunnerConfig": "vsr_pipeline.config",
    "EncodeOptions": "vsr_pipeline.config",
    "AdaptConfig": "vsr_pipeline.adapt.config",
    "EnhanceResult": "vsr_pipeline.pipeline",
    "Enhancer": "vsr_pipeline.enhancer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vsr_pipeline' has no attribute {name!r}")
