"""Scene-cut detection: PySceneDetect's content detector, fed our RGB frames as they stream.

A cut starts a new scene; windows treat it like a clip edge, and adaptation resets its
state there. :class:`SceneDetector` answers frame by frame (for the streaming pipeline);
:func:`detect_scenes` runs it over a whole file (for random access, e.g. VapourSynth).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scenedetect import ContentDetector
from scenedetect.common import FrameTimecode
from scenedetect.detector import FlashFilter


@dataclass(frozen=True)
class SceneConfig:
    """Cut detection settings; ``threshold <= 0`` turns detection off."""

    threshold: float = 27.0  # ContentDetector score (HSV change, 0-255) that marks a cut
    min_scene_len: int = 8  # frames: no second cut closer than this to the last one
    analysis_width: int = 256  # frames are shrunk to this width before scoring (speed)


class SceneDetector:
    """Call ``detector(prev, cur)`` for consecutive frames; True when ``cur`` starts a scene.

    ``prev``/``cur`` are :class:`~vsr_pipeline.io.reader.Frame` objects or (3, H, W) tensors.
    Frames must be given in order, each once (the first call also feeds ``prev``).
    """

    def __init__(self, config: SceneConfig = SceneConfig(), fps: float = 25.0) -> None:
        self.config = config
        self.fps = fps
        self._detector = ContentDetector(
            threshold=config.threshold,
            min_scene_len=config.min_scene_len,
            filter_mode=FlashFilter.Mode.SUPPRESS,  # answers at once; MERGE may answer late
        )
        self._next = 0  # number of frames fed so far

    def _feed(self, frame) -> list[int]:
        rgb = frame.rgb if hasattr(frame, "rgb") else frame
        img = _to_bgr8(rgb, self.config.analysis_width)
        cuts = self._detector.process_frame(FrameTimecode(self._next, fps=self.fps), img)
        self._next += 1
        return [c.frame_num for c in cuts]

    def __call__(self, prev, cur) -> bool:
        if self.config.threshold <= 0:
            return False
        if self._next == 0:
            self._feed(prev)
        index = self._next
        return index in self._feed(cur)


def _to_bgr8(rgb: torch.Tensor, width: int) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1] -> (h, w, 3) uint8 BGR no wider than ``width``."""
    arr = (rgb.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    h, w = arr.shape[:2]
    if w > width:
        arr = cv2.resize(arr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr[..., ::-1])


def detect_scenes(path: Path | str, config: SceneConfig = SceneConfig(), **reader_kw) -> list[int]:
    """Indices of the frames of ``path`` that start a scene (always includes 0).

    ``reader_kw`` go to :class:`~vsr_pipeline.io.reader.VideoReader` (e.g. start/duration).
    """
    from vsr_pipeline.io.reader import VideoReader

    reader = VideoReader(path, **reader_kw)
    detector = SceneDetector(config, fps=float(reader.info.fps or 25))
    starts, prev = [0], None
    for frame in reader:
        if prev is not None and detector(prev, frame):
            starts.append(frame.index)
        prev = frame
    return starts
