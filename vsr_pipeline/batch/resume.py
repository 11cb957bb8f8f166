"""``vsrpipe enhance --resume``: one file in durable segments, so that a rerun after a crash finishes it.

The work (manifest and segment files) lives in a hidden folder beside the output,
``.<output name>.vsrpipe/``, removed when the output is published. The result equals an
uninterrupted ``enhance`` (see :mod:`vsr_pipeline.batch.segments`). An image-sequence
output (``out/%06d.png``) is resumed frame by frame instead: its frames are staged in
that folder, inside ``out/``, and a rerun keeps those a killed run finished (see
:mod:`vsr_pipeline.pipeline`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vsr_pipeline.batch.manifest import Manifest
from vsr_pipeline.batch.plan import Item, refuse_links
from vsr_pipeline.batch.runner import BatchOptions, Driver
from vsr_pipeline.config import EnhanceConfig
from vsr_pipeline.errors import ConfigError, DecodeError, InputError, ModelError, OutputError, VsrError
from vsr_pipeline.io.files import NAME_MAX, fitting_name

_ERRORS = {3: InputError, 4: OutputError, 5: ModelError, 6: DecodeError, 7: ConfigError}


def work_folder_for(dst: Path) -> Path:
    """The hidden work folder of a resumable run writing ``dst`` (its name cut to fit, as temp names are).

    For a sequence output (``out/%06d.png``) it lies in the output folder ``out/``.
    """
    return dst.parent / f".{fitting_name(dst.name, NAME_MAX - 9)}.vsrpipe"


def enhance_resumable(src: Path | str, dst: Path | str, config: EnhanceConfig, progress=None, *,
                      segment_frames: int = 1000):
    """Upscale ``src`` into ``dst`` like :func:`~vsr_pipeline.pipeline.run_enhance`, resumably -> EnhanceResult.

    ``progress(done, expected)`` as for ``run_enhance``. Raises the same
    :class:`~vsr_pipeline.errors.VsrError` subclasses; after a failure or a kill the
    finished segments (a sequence output: its staged frames) stay in the work folder for
    the next ``--resume``.
    """
    from vsr_pipeline.batch.jobs import stage_for
    from vsr_pipeline.io.files import check_report_path
    from vsr_pipeline.io.sequence_sink import is_sequence_output
    from vsr_pipeline.io.source import check_output, probe_source
    from vsr_pipeline.pipeline import EnhanceResult, write_report

    src, dst = Path(src), Path(dst)
    if config.start is not None or config.duration is not None:
        raise ConfigError("--resume works on whole files; drop --start and --duration.")
    if config.on_error != "stop":
        raise ConfigError("--resume needs --on-error stop (frames lost to damage would shift the segments).")
    work = work_folder_for(dst)
    inner = work / ("frames" if is_sequence_output(dst) else "segments")
    refuse_links(work, inner)
    check_output(src, dst, overwrite=config.overwrite or work.is_dir())  # an output of ours is judged below
    if config.report is not None:
        check_report_path(config.report, overwrite=config.overwrite, used=(src, dst, work, config.model))
    info = probe_source(src, dst, fps=config.fps)
    stage = stage_for(config.stage)  # model errors before any work is recorded
    on_progress = (lambda snap: progress(snap.frames_done, snap.frames_total or None)) if progress else None
    # a resumed run retries a recorded failure: the user asked for this one file again
    options = BatchOptions(segment_frames=max(1, segment_frames), retry_failed=True)
    driver = Driver(config, options, out_dir=dst.parent, work_for=lambda key: inner, progress=on_progress,
                    always_segments=True)
    with Manifest(work) as manifest:
        batch = driver.run(manifest, [Item(dst.name, src, dst)], [])
    outcome = batch.outcomes[0]
    if outcome.status == "failed":
        raise _ERRORS.get(outcome.exit_code or 1, VsrError)(outcome.reason)
    shutil.rmtree(work, ignore_errors=True)
    w, h = info.display_size
    oh, ow = stage.output_size(h, w)
    result = EnhanceResult(
        output=dst, frames=outcome.frames or 0, lost_frames=0, seconds=batch.seconds, input_size=(w, h),
        output_size=(ow, oh), model=stage.name, device=str(stage.device), adapt=outcome.report,
        runtime=stage.runtime(), model_info=stage.model_facts(),
    )
    if config.report is not None:
        write_report(config.report, result, replace=config.overwrite)
    return result

