"""Measure a result against its reference (``vsrpipe evaluate``) and show it (``vsrpipe compare``).

* :mod:`~vsr_pipeline.evaluate.scoring` — :func:`evaluate_videos` streams both clips,
  matches frames by timestamp and scores every pair (PSNR and SSIM on Y, ST-LPIPS and
  LPIPS on RGB) into an :class:`EvaluationReport`, written as a table, JSON or CSV.
* :mod:`~vsr_pipeline.evaluate.figures` — :func:`plot_psnr` (per-frame PSNR over time) and
  :func:`compare_frames`, the side-by-side zoomed-crop figure of SR papers.

The names below are re-exported for ``from vsr_pipeline import evaluate as ev``. Patch
module-level lookups (e.g. ``load_stlpips``) on the submodule that uses them, not here.
"""

from __future__ import annotations

from vsr_pipeline.evaluate.figures import (
    IMAGE_EXTENSIONS,
    CompareResult,
    Panel,
    compare_frames,
    figure_size,
    load_frame,
    parse_crop,
    plot_formats,
    plot_psnr,
    render_compare,
)
from vsr_pipeline.evaluate import figures, scoring
from vsr_pipeline.evaluate.scoring import (
    EvaluationReport,
    FrameScore,
    evaluate_videos,
    format_table,
    write_csv,
    write_json,
)

__all__ = [*scoring.__all__, *figures.__all__]
