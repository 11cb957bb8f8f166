import av
import numpy as np
import pytest
import torch

from vsr_pipeline.io.color import ColorSpec, resolve_matrix, rgb_to_yuv, yuv_to_rgb
from vsr_pipeline.io.reader import frame_to_rgb


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("depth", [8, 10])
def test_round_trip_444(matrix, full, depth):
    spec = ColorSpec(matrix=matrix, full_range=full, bit_depth=depth)
    rgb = torch.rand(3, 16, 20)
    y, u, v = rgb_to_yuv(rgb, spec, (0, 0))
    back = yuv_to_rgb(y, u, v, spec)
    # one code value of quantisation, spread over the matrix
    assert (back - rgb).abs().max() < 4.0 / (1 << depth)


def test_ten_bit_keeps_more_than_eight_bits():
    spec = ColorSpec(bit_depth=10)
    ramp = torch.linspace(0.2, 0.21, 64).repeat(3, 8, 1)  # (3, 8, 64): finer steps than 1/255
    y, u, v = rgb_to_yuv(ramp, spec, (1, 1))
    levels = y.unique().numel()
    assert levels > 4  # 8 bits would give 3-4 levels over this range
    back = yuv_to_rgb(y, u, v, spec)
    assert (back - ramp).abs().max() < 2e-3


def test_limited_range_levels():
    spec = ColorSpec(matrix="bt709", full_range=False, bit_depth=8)
    black, white = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
    assert rgb_to_yuv(black, spec, (1, 1))[0].unique().tolist() == [16]
    assert rgb_to_yuv(white, spec, (1, 1))[0].unique().tolist() == [235]
    assert rgb_to_yuv(white, spec, (1, 1))[1].unique().tolist() == [128]


def test_matrix_defaults_by_height():
    assert resolve_matrix(2, 480) == "bt601"
    assert resolve_matrix(2, 720) == "bt709"
    assert resolve_matrix(1, 480) == "bt709"
    assert resolve_matrix(9, 2160) == "bt2020"


@pytest.mark.parametrize("matrix,av_space", [("bt601", "ITU601"), ("bt709", "ITU709")])
def test_matches_swscale(matrix, av_space):
    """Our conversion agrees with FFmpeg's swscale on smooth 4:4:4 content."""
    rng = np.random.default_rng(0)
    yuv = np.stack([rng.integers(16, 236, (8, 8)), rng.integers(16, 241, (8, 8)), rng.integers(16, 241, (8, 8))])
    frame = av.VideoFrame.from_ndarray(yuv.astype(np.uint8), format="yuv444p")
    ours = frame_to_rgb(frame, ColorSpec(matrix=matrix))
    theirs = frame.reformat(format="rgb48le", src_colorspace=av_space).to_ndarray().astype(np.float32) / 65535
    assert np.abs(ours.permute(1, 2, 0).numpy() - theirs).max() < 1.5 / 255
