"""The public Python API: what the CLI (and the VapourSynth and batch drivers) call.

::

    import vsr_pipeline
    report = vsr_pipeline.enhance("in.mp4", "out.mp4", scale=4, tile=256, crf=16)

    stage = vsr_pipeline.Enhancer(vsr_pipeline.StageConfig(scale=4))   # load the model once ...
    for src, dst in jobs:                                               # ... and upscale many files
        vsr_pipeline.enhance(src, dst, stage=stage)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.config import EncodeOptions, EnhanceConfig, RunnerConfig, replace_flat

__all__ = ["EnhanceConfig", "enhance", "make_config"]

_RUNNER_KEYS = {f.name for f in fields(RunnerConfig)}
_ENCODE_KEYS = {f.name for f in fields(EncodeOptions)}
_ADAPT_KEYS = {f.name for f in fields(AdaptConfig)} - {"method"}
_CONFIG_KEYS = {f.name for f in fields(EnhanceConfig)} - {"runner", "encode", "adapt"}
OPTION_NAMES = frozenset(_RUNNER_KEYS | _ENCODE_KEYS | _ADAPT_KEYS | _CONFIG_KEYS | {"adapt"})


def make_config(base: EnhanceConfig | None = None, **options) -> EnhanceConfig:
    """An :class:`EnhanceConfig` from flat keyword options (the fields of it and of its parts).

    ``adapt`` may be a method name or an :class:`AdaptConfig`. Raises TypeError for an
    unknown option and :class:`~vsr_pipeline.errors.ConfigError` for a bad value.
    """
    base = base or EnhanceConfig()
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise TypeError(f"enhance() got unknown option(s): {', '.join(sorted(unknown))}")
    method = options.get("adapt")
    adapt_base = method if isinstance(method, AdaptConfig) else base.adapt
    adapt_fields = {k: v for k, v in options.items() if k in _ADAPT_KEYS}
    if method is not None and not isinstance(method, AdaptConfig):
        adapt_fields["method"] = method
    parts = {
        "runner": replace_flat(base.runner, {k: v for k, v in options.items() if k in _RUNNER_KEYS}),
        "encode": replace_flat(base.encode, {k: v for k, v in options.items() if k in _ENCODE_KEYS}),
        "adapt": replace_flat(adapt_base, adapt_fields),
    }
    top = {k: v for k, v in options.items() if k in _CONFIG_KEYS}
    return replace_flat(base, {**top, **parts})


def enhance(
    input: str | Path,
    output: str | Path,
    *,
    config: EnhanceConfig | None = None,
    progress=None,
    stage=None,
    **options,
):
    """Upscale the video ``input`` into ``output`` and return the run report (:class:`~vsr_pipeline.pipeline.EnhanceResult`).

    Options are the fields of :class:`EnhanceConfig` (``scale``, ``model``, ``start``,
    ``duration``, ``on_error``, ``edge``, ``overwrite``, ``scene_threshold``, ``report``), of
    :class:`RunnerConfig` (``device``, ``half``, ``tile``, ``tile_pad``, ``batch``, ``runtime``) and of
    :class:`EncodeOptions` (``backend``, ``codec``, ``crf``, ``preset``, ``pix_fmt``,
    ``encoder_args``, ``copy_audio``, ``copy_subtitles``), given flat as keywords, e.g.
    ``enhance("in.mp4", "out.mkv", scale=2, tile=256, crf=16)``. Test-time adaptation:
    ``adapt="consistency"|"masked"|"online"|"internal"`` (or an :class:`AdaptConfig`) plus
    its fields, e.g. ``enhance(..., adapt="online", degradation="gauss:sigma=2",
    steps_per_frame=2)``; ``report="run.json"`` writes the run report.
    ``progress(done, expected)`` is called after every frame (``expected`` may be None).
    ``stage``: an :class:`~vsr_pipeline.enhancer.Enhancer` built from the same settings, to
    reuse one loaded model across files.

    Raises a :class:`~vsr_pipeline.errors.VsrError` subclass with a one-sentence message on
    bad input; nothing is left at ``output`` when it fails or is interrupted.
    """
    from vsr_pipeline.pipeline import run_enhance

    return run_enhance(input, output, make_config(config, **options), progress=progress, stage=stage)
