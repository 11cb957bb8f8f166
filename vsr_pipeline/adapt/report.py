"""The adaptation run report: one record per frame plus totals, JSON-serialisable."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vsr_pipeline.io.files import write_bytes_atomic


@dataclass
class FrameRecord:
    """One frame of the run report."""

    index: int  # frame index as given to process()
    scene: int  # scene id as given to process()
    loss_before: float  # objective of the trained weights (online: first step's crops)
    loss_after: float  # objective of the weights used for the output (online: last step's crops)
    steps: int  # SGD updates made for this frame
    adapt_seconds: float  # time tuning (masked: including the MC-dropout passes)
    infer_seconds: float  # time in the output pass (0 when the tuning's own last pass is the output)
    fallback: bool = False  # diverged: the trained weights' output was used
    mask_fraction: float | None = None  # masked: fraction of output pixels in the mask
    replayed: int = 0  # online: earlier frames re-adapted for an out-of-order request
    unchanged: bool = False  # the output is the trained weights' own: no step lowered the loss
    guarded: bool = False  # unchanged because the probe's guard kept the trained weights
    lr: float | None = None  # learning rate used for this frame (None: no steps)


@dataclass
class AdaptReport:
    """Run report of an :class:`Adapter`: per-frame records plus totals; JSON-serialisable."""

    method: str
    degradation: str
    scale: float
    frames: list[FrameRecord] = field(default_factory=list)
    scenes: dict[int, dict] = field(default_factory=dict)  # --degradation estimate: scene -> {degradation, source}

    def totals(self) -> dict:
        """Sums and means over the frames."""
        n = len(self.frames)
        adapt = sum(f.adapt_seconds for f in self.frames)
        infer = sum(f.infer_seconds for f in self.frames)
        finite = [f for f in self.frames if math.isfinite(f.loss_before) and math.isfinite(f.loss_after)]
        return {
            "frames": n,
            "steps": sum(f.steps for f in self.frames),
            "fallbacks": sum(f.fallback for f in self.frames),
            "unchanged": sum(f.unchanged for f in self.frames),
            "guarded": sum(f.guarded for f in self.frames),
            "scene_sources": _count(s["source"].split(":")[0] for s in self.scenes.values()),
            "adapt_seconds": adapt,
            "infer_seconds": infer,
            "mean_loss_before": sum(f.loss_before for f in finite) / len(finite) if finite else None,
            "mean_loss_after": sum(f.loss_after for f in finite) / len(finite) if finite else None,
        }

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "degradation": self.degradation,
            "scale": self.scale,
            "totals": self.totals(),
            "scenes": {str(k): v for k, v in sorted(self.scenes.items())},
            "frames": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(f).items()} for f in self.frames],
        }

    def write_json(self, path: Path | str) -> None:
        """Write :meth:`to_dict` as JSON (NaN losses become null), atomically."""
        write_bytes_atomic(path, json.dumps(self.to_dict(), indent=2).encode())


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
