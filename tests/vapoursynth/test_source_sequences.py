"""``source()`` reads image sequences too (issue 25): 16-bit samples as they are, the frame rate from ``fps``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import vapoursynth as vs

from vsr_pipeline.vapoursynth import source


def test_source_reads_a_16_bit_sequence_at_fps(tmp_path):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 65536, (6, 8, 3)).astype(np.uint16) for _ in range(4)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i + 10:04d}.png"), f[..., ::-1])  # RGB -> OpenCV's BGR
    clip = source(tmp_path / "%04d.png", fps=24)
    assert (clip.width, clip.height, clip.num_frames, clip.format.id) == (8, 6, 4, vs.RGBS)
    assert (clip.fps.numerator, clip.fps.denominator) == (24, 1)
    for i in (2, 0, 3):  # out of order: the source restarts
        f = clip.get_frame(i)
        got = np.stack([np.asarray(f[p]) for p in range(3)], axis=-1)
        np.testing.assert_array_equal(np.round(got * 65535).astype(np.uint16), frames[i])
        assert (f.props["_DurationNum"], f.props["_DurationDen"]) == (1, 24)


def test_source_refuses_a_gap_and_fps_for_a_video(tmp_path):
    for n in (1, 3):
        cv2.imwrite(str(tmp_path / f"{n:04d}.png"), np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(vs.Error, match="source: Folder .* is missing frame 2"):
        source(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(vs.Error, match="source: --fps applies to image-sequence input"):
        source(tmp_path / "clip.mp4", fps=24)
