"""Test-time adaptation: the network is tuned to each clip, self-supervised, before it upscales it.

Methods are registered in :mod:`vsr_pipeline.adapt.registry` (``none``, ``consistency``,
``masked``, ``online``, ``internal``), each a module with a ``Method`` class implementing
:mod:`vsr_pipeline.adapt.base`'s interface; :class:`~vsr_pipeline.adapt.adapter.Adapter`
runs the chosen one and keeps the report. ``AdaptConfig`` is in
:mod:`vsr_pipeline.adapt.config`. This package imports nothing on its own, so that the
command line can read the registry without importing torch.
"""
