"""Models: the protocol every network follows, the registry, and the built-in architectures."""

from vsr_pipeline.models.base import ModelEntry, VSRModel
from vsr_pipeline.models.registry import available_models, load_model

__all__ = ["ModelEntry", "VSRModel", "available_models", "load_model"]
