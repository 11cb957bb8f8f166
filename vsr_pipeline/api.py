"""The public Python API: what the CLI (and later VapourSynth and batch) call."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from vsr_pipeline.io.writer import EncodeOptions
from vsr_pipeline.pipeline import EnhanceConfig, EnhanceResult, Progress, run_enhance
from vsr_pipeline.runner import RunnerConfig

__all__ = ["EnhanceConfig", "EnhanceResult", "enhance"]

_RUNNER_KEYS = {f.name for f in fields(RunnerConfig)}
_ENCODE_KEYS = {f.name for f in fields(EncodeOptions)}
_CONFIG_KEYS = {f.name for f in fields(EnhanceConfig)} - {"runner", "encode"}


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
    ``progress(done, expected)`` is called after every frame (``expected`` may be None).

    Raises a :class:`~vsr_pipeline.errors.VsrError` subclass with a one-sentence message on
    bad input; nothing is left at ``output`` when it fails or is interrupted.
    """
    base = config or EnhanceConfig()
    unknown = set(options) - _RUNNER_KEYS - _ENCODE_KEYS - _CONFIG_KEYS
    if unknown:
        raise TypeError(f"enhance() got unknown option(s): {', '.join(sorted(unknown))}")
    runner = RunnerConfig(**{**_asdict(base.runner), **{k: v for k, v in options.items() if k in _RUNNER_KEYS}})
    encode = EncodeOptions(**{**_asdict(base.encode), **{k: v for k, v in options.items() if k in _ENCODE_KEYS}})
    top = {k: v for k, v in options.items() if k in _CONFIG_KEYS}
    cfg = EnhanceConfig(**{**_asdict(base), **top, "runner": runner, "encode": encode})
    return run_enhance(input, output, cfg, progress=progress)


def _asdict(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
