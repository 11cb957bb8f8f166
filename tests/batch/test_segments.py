"""Segments of a long file: planning, and joined output identical to an uninterrupted run."""

from __future__ import annotations

import pytest

from vsr_pipeline.api import make_config
from vsr_pipeline.batch.segments import Plan, borders, encode_segment, join_segments, make_plan, segment_path
from vsr_pipeline.enhancer import Enhancer
from vsr_pipeline.io.probe import probe
from vsr_pipeline.pipeline import run_enhance

from clips import make_clip
from batch_helpers import assert_same_video


def test_borders_follow_scene_cuts_with_adaptation():
    starts = [0, 16, 30, 45]
    assert borders(60, starts, 10, inside_scenes=False) == [0, 16, 30, 45]
    assert borders(60, [0], 10, inside_scenes=False) == [0]  # one long scene: one segment
    assert borders(60, [0], 10, inside_scenes=True, batch=4) == [0, 12, 24, 36, 48]  # multiples of --batch
    assert borders(60, starts, 100, inside_scenes=True) == [0]


def test_plan_reads_context_only_inside_scenes():
    pts = [i * 40 for i in range(30)]
    plan = make_plan(pts, [0, 10], 10, inside_scenes=True)
    first, second, third = plan.segments
    assert (first.first, first.end, first.read_from, first.read_to) == (0, 10, 0, 10)  # border at a cut: no context
    assert (second.read_from, second.read_to, second.from_pts, second.to_pts) == (10, 22, 400, 880)
    assert (third.first, third.read_from, third.to_pts) == (20, 18, None)
    assert Plan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize("extra", [{}, {"scene_threshold": 0.0}, {"batch": 3}, {"adapt": "online", "degradation": "bicubic"}],
                         ids=["cuts", "no-cuts", "batch3", "online"])
def test_segments_joined_equal_an_uninterrupted_run(tmp_path, extra):
    clip = make_clip(tmp_path / "in.mkv", n=40, size=(32, 24), audio=True, subtitles=True)
    model = "bicubic"
    if "adapt" in extra:
        from vsr_pipeline.models.vsrnet import VSRNet, VSRNetConfig, save_vsrnet

        model = str(tmp_path / "tiny.safetensors")
        save_vsrnet(VSRNet(VSRNetConfig(scale=2, features=8, blocks=1)), model)
    cfg = make_config(model=model, scale=2, codec="ffv1", **extra)
    run_enhance(clip.path, tmp_path / "full.mkv", cfg)
    info = probe(clip.path)
    from vsr_pipeline.batch.segments import plan_file

    plan = plan_file(clip.path, info, cfg, 9)
    assert len(plan.segments) > 1 or "adapt" in extra or extra.get("scene_threshold") == 0.0
    stage = Enhancer(cfg.stage)
    files = []
    for i in range(len(plan.segments)):
        files.append(segment_path(tmp_path, i, ".mkv"))
        assert encode_segment(clip.path, info, cfg, plan, i, files[-1], stage)["frames"] == plan.segments[i].end - plan.segments[i].first
    assert join_segments(clip.path, info, cfg, files, tmp_path / "joined.mkv", (64, 48), replace=False) == 40
    assert_same_video(tmp_path / "full.mkv", tmp_path / "joined.mkv")


def test_vfr_timestamps_survive_the_join(tmp_path):
    from fractions import Fraction

    pts = [0, 40, 80, 200, 240, 400, 440, 480, 600, 640, 700, 720, 800, 880, 960, 1000]
    clip = make_clip(tmp_path / "vfr.mp4", n=len(pts), size=(32, 24), pts=pts, time_base=Fraction(1, 1000))
    cfg = make_config(model="bicubic", scale=2, scene_threshold=0.0)
    run_enhance(clip.path, tmp_path / "full.mp4", cfg)
    info = probe(clip.path)
    from vsr_pipeline.batch.segments import plan_file

    plan = plan_file(clip.path, info, cfg, 5)
    assert len(plan.segments) > 2
    stage = Enhancer(cfg.stage)
    files = [segment_path(tmp_path, i, ".mp4") for i in range(len(plan.segments))]
    for i, f in enumerate(files):
        encode_segment(clip.path, info, cfg, plan, i, f, stage)
    join_segments(clip.path, info, cfg, files, tmp_path / "joined.mp4", (64, 48), replace=False)
    from batch_helpers import decoded

    assert decoded(tmp_path / "joined.mp4")[0] == decoded(tmp_path / "full.mp4")[0]
