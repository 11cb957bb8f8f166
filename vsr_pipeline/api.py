"""The public Python API: what the CLI (and later VapourSynth and batch) call."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from vsr_pipeline.adapt.config import AdaptConfig
from vsr_pipeline.io.writer import EncodeOptions
from vsr_pipeline.pipeline import EnhanceConfig, EnhanceResult, Progress, run_enhance
from vsr_pipeline.runner import RunnerConfig

__all__ = ["EnhanceConfig", "EnhanceResult", "enhance"]

_RUNNER_KEYS = {f.name for f in fields(RunnerConfig)}
_ENCODE_KEYS = {f.name for f in fields(EncodeOptions)}
_ADAPT_KEYS = {f.name for f in fields(AdaptConfig)} - {"method"}
_CONFIG_KEYS = {f.name for f in fields(EnhanceConfig)} - {"runner", "encode", "adapt"}


def enhance(
    input: str | Path,
    output: str | Path,
    *,
    config: EnhanceConfig | None = None,
    progress: Progress | None = None,
    **options,
) -> EnhanceResult:
    """Upscale the video ``input`` into ``output`` and return the run report.

    Options are the fields of :class:`EnhanceConfig` (``scale``, ``model``, ``start``,
    ``duration``, ``on_error``, ``edge``, ``overwrite``), of :class:`RunnerConfig`
    (``device``, ``half``, ``tile``, ``tile_pad``, ``batch``) and of
    :class:`~vsr_pipeline.io.writer.EncodeOptions` (``backend``, ``codec``, ``crf``,
    ``preset``, ``pix_fmt``, ``encoder_args``, ``copy_audio``, ``copy_subtitles``), given
    flat as keywords, e.g. ``enhance("in.mp4", "out.mkv", scale=2, tile=256, crf=16)``.
    Test-time adaptation: ``adapt="consistency"|"masked"|"online"|"internal"`` (or an
    :class:`~vsr_pipeline.adapt.config.AdaptConfig`) plus its fields, e.g.
    ``enhance(..., adapt="online", degradation="gauss:sigma=2", steps_per_frame=2)``;
    ``report="run.json"`` writes the run report.
    ``progress(done, expected)`` is called after every frame (``expected`` may be None).

    Raises a :class:`~vsr_pipeline.errors.VsrError` subclass with a one-sentence message on
    bad input; nothing is left at ``output`` when it fails or is interrupted.
    """
    base = config or EnhanceConfig()
    unknown = set(options) - _RUNNER_KEYS - _ENCODE_KEYS - _CONFIG_KEYS - _ADAPT_KEYS - {"adapt"}
    if unknown:
        raise TypeError(f"enhance() got unknown option(s): {', '.join(sorted(unknown))}")
    runner = RunnerConfig(**{**_asdict(base.runner), **{k: v for k, v in options.items() if k in _RUNNER_KEYS}})
    encode = EncodeOptions(**{**_asdict(base.encode), **{k: v for k, v in options.items() if k in _ENCODE_KEYS}})
    method = options.get("adapt")
    if isinstance(method, AdaptConfig):
        adapt_base, method = method, None
    else:
        adapt_base = base.adapt
    adapt_fields = {k: v for k, v in options.items() if k in _ADAPT_KEYS}
    if method is not None:
        adapt_fields["method"] = method
    adapt = AdaptConfig(**{**_asdict(adapt_base), **adapt_fields})
    top = {k: v for k, v in options.items() if k in _CONFIG_KEYS}
    cfg = EnhanceConfig(**{**_asdict(base), **top, "runner": runner, "encode": encode, "adapt": adapt})
    return run_enhance(input, output, cfg, progress=progress)


def _asdict(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
