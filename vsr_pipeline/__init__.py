"""vsrpipe: video super-resolution that adapts its network to each clip at test time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vsr-pipeline")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from vsr_pipeline.api import EnhanceResult, enhance  # noqa: E402

__all__ = ["EnhanceResult", "__version__", "enhance"]
