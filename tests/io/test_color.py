import av
import numpy as np
import pytest
import torch

from vsr_pipeline.io.color import ColorSpec, gray_to_rgb, resolve_matrix, rgb_to_yuv, yuv_to_rgb
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


# Exact code values at the edges of the range (issue 18, mutation testing) --------------------

def _solid(r, g, b, h=2, w=2):
    return torch.tensor([r, g, b], dtype=torch.float32).view(3, 1, 1).expand(3, h, w)


def test_full_range_saturated_colours_hit_the_code_limits():
    """Full-range chroma of pure blue/red is 0.5 · 255 + 128 = 255.5: it must be clamped to 255, not 256;
    black is Y = 0 exactly, and yellow/cyan reach chroma 0."""
    spec = ColorSpec(matrix="bt709", full_range=True, bit_depth=8)
    y, u, v = rgb_to_yuv(_solid(0, 0, 1), spec, (0, 0))
    assert (y.unique().tolist(), u.unique().tolist(), v.unique().tolist()) == ([18], [255], [116])
    assert y.dtype == u.dtype == v.dtype == torch.int32
    y, u, v = rgb_to_yuv(_solid(1, 0, 0), spec, (0, 0))
    assert (y.unique().tolist(), u.unique().tolist(), v.unique().tolist()) == ([54], [99], [255])
    y, u, v = rgb_to_yuv(_solid(1, 1, 0), spec, (1, 1))
    assert (y.unique().tolist(), u.unique().tolist(), v.unique().tolist()) == ([237], [0], [140])
    y, u, v = rgb_to_yuv(_solid(0, 0, 0), spec, (1, 0))
    assert (y.unique().tolist(), u.unique().tolist(), v.unique().tolist()) == ([0], [128], [128])
    y, u, v = rgb_to_yuv(_solid(1, 1, 1), spec, (0, 0))
    assert (y.unique().tolist(), u.unique().tolist(), v.unique().tolist()) == ([255], [128], [128])


def test_full_range_16_bit_chroma_clamped_to_65535():
    spec = ColorSpec(matrix="bt601", full_range=True, bit_depth=16)
    y, u, v = rgb_to_yuv(_solid(0, 0, 1), spec, (0, 0))
    assert u.unique().tolist() == [65535] and y.unique().tolist() == [round(0.114 * 65535)]
    assert rgb_to_yuv(_solid(1, 1, 0), spec, (0, 0))[1].unique().tolist() == [0]


def test_out_of_range_rgb_is_clamped_before_conversion():
    spec = ColorSpec(matrix="bt709", full_range=False, bit_depth=10)
    wild = torch.tensor([[1.7, -0.4], [0.3, 2.5]]).expand(3, 2, 2).clone()
    wild[1] = torch.tensor([[-0.8, 0.5], [1.4, -2.0]])
    wild[2] = torch.tensor([[0.2, 1.9], [-0.1, 0.6]])
    for got, want in zip(rgb_to_yuv(wild, spec, (0, 0)), rgb_to_yuv(wild.clamp(0, 1), spec, (0, 0))):
        assert torch.equal(got, want)


def test_levels_of_ten_bit_limited_and_full_range():
    limited = ColorSpec(bit_depth=10)
    assert [p.unique().tolist() for p in rgb_to_yuv(_solid(0, 0, 0), limited, (1, 1))] == [[64], [512], [512]]
    assert rgb_to_yuv(_solid(1, 1, 1), limited, (1, 1))[0].unique().tolist() == [940]
    assert rgb_to_yuv(_solid(0, 0, 1), limited, (0, 0))[1].unique().tolist() == [960]  # 512 + 0.5 · 896
    full = ColorSpec(bit_depth=10, full_range=True)
    assert [p.unique().tolist() for p in rgb_to_yuv(_solid(0.5, 0.5, 0.5), full, (0, 0))] == [[512], [512], [512]]
    assert rgb_to_yuv(_solid(1, 1, 1), full, (0, 0))[0].unique().tolist() == [1023]


@pytest.mark.parametrize(
    "spec,y,u,v,rgb",
    [
        (ColorSpec(), 16, 128, 128, (0.0, 0.0, 0.0)),
        (ColorSpec(), 235, 128, 128, (1.0, 1.0, 1.0)),
        (ColorSpec(bit_depth=10), 64, 512, 512, (0.0, 0.0, 0.0)),
        (ColorSpec(bit_depth=10), 940, 512, 512, (1.0, 1.0, 1.0)),
        (ColorSpec(full_range=True), 255, 128, 128, (1.0, 1.0, 1.0)),
        (ColorSpec(full_range=True, bit_depth=12), 2048, 2048, 2048, (2048 / 4095,) * 3),
        # BT.709 limited red: Y = 16 + 219 · 0.2126, Cr = 128 + 112
        (ColorSpec(), 16 + 219 * 0.2126, 128 - 112 * 0.2126 / 0.9278, 240, (1.0, 0.0, 0.0)),
        (ColorSpec(matrix="bt601", full_range=True), 255 * 0.114, 255.5, 128 - 127.5 * 0.114 / 0.701, (0.0, 0.0, 1.0)),
    ],
)
def test_yuv_to_rgb_reference_values(spec, y, u, v, rgb):
    planes = [torch.full((2, 4), float(x)) for x in (y, u, v)]
    got = yuv_to_rgb(*planes, spec)
    assert got.shape == (3, 2, 4) and got.dtype == torch.float32
    assert got.amax(dim=(1, 2)).tolist() == pytest.approx(list(rgb), abs=1e-5)
    assert got.amin(dim=(1, 2)).tolist() == pytest.approx(list(rgb), abs=1e-5)


def test_yuv_to_rgb_clamps_to_unit_range():
    spec = ColorSpec()
    # Y 16 / 235 with both chroma at their maximum: R and B pass white, G falls below black
    got = yuv_to_rgb(torch.tensor([[16, 235]]), torch.full((1, 2), 240), torch.full((1, 2), 240), spec)
    assert got[1, 0, 0] == 0.0 and got[0, 0, 1] == 1.0 and got[2, 0, 1] == 1.0
    assert got[0, 0, 0] == pytest.approx(2 * (1 - 0.2126) * 0.5, abs=1e-6)  # not clamped: in range
    black = yuv_to_rgb(torch.zeros(2, 2), torch.full((2, 2), 128), torch.full((2, 2), 128), spec)
    assert black.unique().tolist() == [0.0]  # below limited-range black


@pytest.mark.parametrize("shift", [(1, 1), (1, 0)])
def test_subsampled_chroma_upsampled_centre_sited(shift):
    """4:2:0 / 4:2:2 chroma is upsampled bilinearly (align_corners=False): a chroma step becomes a ramp."""
    sx, sy = shift
    spec = ColorSpec(full_range=True)
    h, w = 4, 8
    y = torch.full((h, w), 128)
    u = torch.full((h >> sy, w >> sx), 128)
    v = torch.tensor([100, 100, 156, 156]).repeat(h >> sy, 1)
    rgb = yuv_to_rgb(y, u, v, spec)
    assert rgb.shape == (3, h, w)
    cr = (torch.tensor([100, 100, 100, 114, 142, 156, 156, 156], dtype=torch.float32) - 128) / 255
    want_r = (128 / 255 + 2 * (1 - 0.2126) * cr).expand(h, w)
    assert torch.allclose(rgb[0], want_r, atol=1e-6)


def test_gray_to_rgb_levels_and_clamping():
    y = torch.tensor([[0, 16, 126], [235, 250, 255]])
    got = gray_to_rgb(y, ColorSpec())
    assert got.shape == (3, 2, 3) and got.is_contiguous()
    assert torch.equal(got[0], got[1]) and torch.equal(got[1], got[2])
    assert got[0].flatten().tolist() == pytest.approx([0.0, 0.0, 110 / 219, 1.0, 1.0, 1.0])
    ten = gray_to_rgb(torch.tensor([[64, 502, 940, 1023]]), ColorSpec(bit_depth=10))
    assert ten[0].flatten().tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    full = gray_to_rgb(torch.tensor([[0, 51, 255]]), ColorSpec(full_range=True))
    assert full[2].flatten().tolist() == pytest.approx([0.0, 0.2, 1.0])
    got[0, 0, 0] = 0.5
    assert got[1, 0, 0] == 0.0  # channels are separate memory, not an expanded view


@pytest.mark.parametrize(
    "matrix,number", [("bt709", 1), ("fcc", 4), ("bt601", 6), ("smpte240m", 7), ("bt2020", 9)]
)
def test_colour_tags(matrix, number):
    assert ColorSpec(matrix=matrix).av_colorspace == number
    assert resolve_matrix(number, 480) == matrix
    assert ColorSpec(matrix=matrix).av_color_range == 1
    assert ColorSpec(matrix=matrix, full_range=True).av_color_range == 2


def test_resolve_matrix_all_tags_and_untagged():
    assert [resolve_matrix(n, 1080) for n in (1, 4, 5, 6, 7, 9, 10)] == [
        "bt709", "fcc", "bt601", "bt601", "smpte240m", "bt2020", "bt2020"
    ]
    assert [resolve_matrix(n, 1080) for n in (0, 2, 3, 8, None)] == ["bt709"] * 5  # untagged HD
    assert [resolve_matrix(n, 719) for n in (0, 2, None)] == ["bt601"] * 3  # untagged SD
    assert resolve_matrix(None, 720) == "bt709" and resolve_matrix(None, 719) == "bt601"
