"""The VapourSynth filter refuses wrongly typed options, unusable weights and output frames too large to
allocate with ``vs.Error("enhance: …")``, never TypeError / IndexError, and never by aborting the process
(VapourSynth aborts when a frame cannot be allocated: ``scale=1000`` used to end in SIGABRT).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import vapoursynth as vs
from broken_models import nan_pth, overflow_pth

from vsr_pipeline.vapoursynth import enhance

core = vs.core


def clip(n: int = 3) -> vs.VideoNode:
    return core.std.BlankClip(width=40, height=24, format=vs.YUV420P8, length=n, color=[100, 128, 128])


def refused(match: str, **options) -> str:
    with pytest.raises(vs.Error) as info:
        enhance(clip(), **options)
    message = str(info.value)
    assert message.startswith("enhance: ") and match in message, message
    return message


@pytest.mark.parametrize(
    "options,match",
    [
        ({"tile": "64"}, "enhance: tile must be an integer, got '64' (type str)."),
        ({"tile": 64.0}, "enhance: tile must be an integer, got 64.0 (type float)."),
        ({"tile_pad": True}, "enhance: tile_pad must be an integer, got True (type bool)."),
        ({"scale": "2"}, "enhance: scale must be a number, got '2' (type str)."),
        ({"half": 1}, "enhance: half must be True or False, got 1 (type int)."),
        ({"model": Path("bicubic")}, "enhance: model must be a string, got PosixPath('bicubic') (type PosixPath)."),
        ({"adapt": "online", "steps_per_frame": "3"}, "enhance: steps_per_frame must be an integer, got '3' (type str)."),
        ({"adapt": "online", "lr": "0.1"}, "enhance: lr must be a number or None, got '0.1' (type str)."),
    ],
)
def test_wrongly_typed_options(options, match):
    refused(match, **{"model": "bicubic", "scale": 2, **options})


def test_numpy_numbers_are_numbers():
    import numpy as np

    out = enhance(clip(), model="bicubic", scale=np.float64(2), tile=np.int64(16), scene_threshold=0)
    assert (out.width, out.height) == (80, 48)


def test_text_file_named_pth(tmp_path):
    (tmp_path / "model.pth").write_text("abc def ghi\n")
    refused(f"enhance: Weights file {str(tmp_path / 'model.pth')!r} is a text file, not a PyTorch weights file; "
            "it cannot be read as a model.", model=str(tmp_path / "model.pth"), scale=2)


def test_nan_weights(tmp_path):
    path = nan_pth(tmp_path / "broken.pth")
    refused(f"enhance: Model {str(path)!r} cannot be used: its weights hold 1 NaN or infinite value(s)", model=str(path), scale=2)


def test_nan_first_frame_is_an_error_not_a_black_frame(tmp_path):
    out = enhance(clip(), model=str(overflow_pth(tmp_path / "overflow.pth")), scale=2, scene_threshold=0)
    with pytest.raises(vs.Error, match="enhance: Model 'overflow' gave NaN or infinite values for the first frame"):
        out.get_frame(0)


def test_whole_frames_too_large():
    refused("enhance: scale=1000 makes 40000x24000 output frames, 10.7 GiB each as float32 RGB, more than the 2.0 GiB a "
            "frame may take when the network runs on whole frames; give tile=512 (or another tile size) or a smaller scale.",
            model="bicubic", scale=1000)


def test_tiled_frames_too_large_for_any_memory():
    # 4,000,000 x 2,400,000 px: 105 TiB a frame; VapourSynth would abort the process allocating it
    refused("enhance: scale=100000 makes 4000000x2400000 output frames", model="bicubic", scale=100000, tile=64)
    refused("(whole frames are held even with tile); choose a smaller scale.", model="bicubic", scale=100000, tile=64)
