"""compare_frames end to end on synthetic clips and images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from clips import make_clip
from evaluate_helpers import blur_and_noise, decoded, write_copy
from vsr_pipeline.errors import ConfigError, InputError
from vsr_pipeline.evaluate import figures as ev
from vsr_pipeline.metrics import psnr, ssim


def test_compare_figure(hr: Path, tmp_path: Path) -> None:
    out = write_copy(hr, tmp_path / "out.mkv", blur_and_noise)
    png = tmp_path / "frame3.png"
    Image.fromarray((decoded(hr)[3].permute(1, 2, 0) * 255).round().byte().numpy()).save(png)
    fig = tmp_path / "fig.png"
    r = ev.compare_frames([out, png], fig, frame=3, crop=(8, 4, 20, 16), reference=hr, labels=["noisy", "still"], zoom=5)
    assert r.zoom == 5 and r.frame_size == (64, 48)
    assert r.size == ev.figure_size((64, 48), (8, 4, 20, 16), 5, 3)
    with Image.open(fig) as img:
        assert img.size == r.size and img.mode == "RGB"
        # the first panel's top-left zoomed pixel is frame 3's pixel (8, 4), repeated 5x5
        left = 8 + round(64 * 80 / 48) + 8
        block = {img.getpixel((left + dx, 8 + dy)) for dx in range(5) for dy in range(5)}
        assert len(block) == 1
    labels = [p.label for p in r.panels]
    assert labels == ["noisy", "still", "reference"] and r.panels[-1].is_reference
    a, b = decoded(out)[3][:, 4:20, 8:28], decoded(hr)[3][:, 4:20, 8:28]
    assert r.panels[0].psnr == pytest.approx(psnr(a, b)) and r.panels[0].ssim == pytest.approx(ssim(a, b))
    assert r.panels[1].psnr > 45  # the still is frame 3 itself, up to 8-bit rounding
    assert r.panels[2].psnr is None

    # without a reference: no metrics, the default zoom and file-name labels
    r = ev.compare_frames([out, hr], tmp_path / "plain.png", frame=0, crop="0,0,64,48")
    assert r.zoom == 5 and [p.label for p in r.panels] == ["out.mkv", "hr.mp4"]
    assert all(p.psnr is None for p in r.panels)


def test_compare_bad_input(hr: Path, tmp_path: Path) -> None:
    fig = tmp_path / "fig.png"
    with pytest.raises(ConfigError, match=r"--crop 60,0,8,8 reaches \(68, 8\), outside the 64x48 frame"):
        ev.compare_frames([hr], fig, frame=0, crop=(60, 0, 8, 8))
    with pytest.raises(InputError, match=r"Frame 6 is beyond the end of .*hr.mp4', which has 6 frames \(numbered 0 to 5\)"):
        ev.compare_frames([hr], fig, frame=6, crop=(0, 0, 8, 8))
    small = make_clip(tmp_path / "small.mp4", n=2, size=(32, 24)).path
    with pytest.raises(InputError, match=r"one size, got hr.mp4 64x48, small.mp4 32x24"):
        ev.compare_frames([hr, small], fig, frame=0, crop=(0, 0, 8, 8))
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4"):
        with pytest.raises(ConfigError, match="--crop"):
            ev.compare_frames([hr], fig, frame=0, crop=bad)
    with pytest.raises(ConfigError, match="--labels gives 3 labels for 1 inputs"):
        ev.compare_frames([hr], fig, frame=0, crop=(0, 0, 8, 8), labels=["a", "b", "c"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.mp4", "small.mp4"]
