"""YUV ⇄ RGB conversion: the one place where colour matrices, ranges and bit depths live.

Frames inside the pipeline are RGB float in [0, 1], shape (C, H, W). The reader hands
this module the raw planes of a decoded frame; the writer gets planes back. Conversion is
done in torch so that it runs on the pipeline's device and keeps the full precision of
10/12-bit input (nothing is squeezed through 8 bits).

Chroma is treated as centre-sited: 4:2:x chroma is upsampled bilinearly with
``align_corners=False`` and downsampled with a box average, which are exact inverses on
smooth content and need no knowledge of the stream's chroma location.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# AVColorSpace values (libavutil/pixfmt.h) -> (Kr, Kb) luma coefficients.
_MATRIX_COEFFS: dict[str, tuple[float, float]] = {
    "bt709": (0.2126, 0.0722),
    "bt601": (0.299, 0.114),
    "fcc": (0.30, 0.11),
    "smpte240m": (0.212, 0.087),
    "bt2020": (0.2627, 0.0593),
}
_AVCOL_SPC = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_AVCOL_SPC_BY_NAME = {"bt709": 1, "fcc": 4, "bt601": 6, "smpte240m": 7, "bt2020": 9}


@dataclass(frozen=True)
class ColorSpec:
    """How the samples of a YUV stream map to RGB."""

    matrix: str = "bt709"  # one of bt709, bt601, bt2020, smpte240m, fcc
    full_range: bool = False  # True: JPEG/full range; False: MPEG/limited (16-235 at 8 bits)
    bit_depth: int = 8  # bits per sample, 8..16

    @property
    def av_colorspace(self) -> int:
        """The AVColorSpace number to tag an encoded stream with."""
        return _AVCOL_SPC_BY_NAME[self.matrix]

    @property
    def av_color_range(self) -> int:
        """The AVColorRange number (1 = MPEG/limited, 2 = JPEG/full)."""
        return 2 if self.full_range else 1


def resolve_matrix(av_colorspace: int | None, height: int) -> str:
    """The matrix named by a stream's colour tag, or the convention when it is untagged.

    Untagged (or unknown) streams get BT.601 for SD (height < 720) and BT.709 for HD,
    as FFmpeg-based players assume.
    """
    if av_colorspace in _AVCOL_SPC:
        return _AVCOL_SPC[av_colorspace]
    return "bt709" if height >= 720 else "bt601"


def _levels(spec: ColorSpec) -> tuple[float, float, float, float]:
    """(y_offset, y_scale, c_offset, c_scale) in code values of ``spec.bit_depth``."""
    maxval = float((1 << spec.bit_depth) - 1)
    mul = float(1 << (spec.bit_depth - 8))
    if spec.full_range:
        return 0.0, maxval, float(1 << (spec.bit_depth - 1)), maxval
    return 16.0 * mul, 219.0 * mul, 128.0 * mul, 224.0 * mul


def yuv_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spec: ColorSpec) -> torch.Tensor:
    """Integer-valued Y, U, V planes (H, W), (h, w), (h, w) -> RGB float (3, H, W) in [0, 1].

    The chroma planes may be subsampled (4:2:0, 4:2:2); they are upsampled to the luma size.
    """
    y_off, y_scale, c_off, c_scale = _levels(spec)
    yf = (y.float() - y_off) / y_scale  # (H, W) in [0, 1]
    uv = torch.stack([u, v]).float()  # (2, h, w)
    uv = (uv - c_off) / c_scale  # [-0.5, 0.5]
    if uv.shape[-2:] != yf.shape[-2:]:
        uv = F.interpolate(uv[None], size=yf.shape[-2:], mode="bilinear", align_corners=False)[0]
    cb, cr = uv[0], uv[1]
    kr, kb = _MATRIX_COEFFS[spec.matrix]
    kg = 1.0 - kr - kb
    r = yf + 2.0 * (1.0 - kr) * cr
    b = yf + 2.0 * (1.0 - kb) * cb
    g = (yf - kr * r - kb * b) / kg
    return torch.stack([r, g, b]).clamp_(0.0, 1.0)


def rgb_to_yuv(
    rgb: torch.Tensor, spec: ColorSpec, chroma_shift: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB float (3, H, W) in [0, 1] -> integer-valued Y, U, V planes as int32 tensors.

    ``chroma_shift`` is (log2 horizontal, log2 vertical) subsampling: (1, 1) for 4:2:0,
    (1, 0) for 4:2:2, (0, 0) for 4:4:4. H and W must be divisible by the subsampling.
    """
    rgb = rgb.float().clamp(0.0, 1.0)
    kr, kb = _MATRIX_COEFFS[spec.matrix]
    r, g, b = rgb[0], rgb[1], rgb[2]
    y = kr * r + (1.0 - kr - kb) * g + kb * b  # (H, W)
    uv = torch.stack([(b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr))])  # (2, H, W)
    sx, sy = chroma_shift
    if sx or sy:
        uv = F.avg_pool2d(uv[None], kernel_size=(1 << sy, 1 << sx))[0]
    y_off, y_scale, c_off, c_scale = _levels(spec)
    maxval = (1 << spec.bit_depth) - 1
    yq = torch.round(y * y_scale + y_off).clamp_(0, maxval).to(torch.int32)
    uvq = torch.round(uv * c_scale + c_off).clamp_(0, maxval).to(torch.int32)
    return yq, uvq[0], uvq[1]


def gray_to_rgb(y: torch.Tensor, spec: ColorSpec) -> torch.Tensor:
    """Integer-valued luma plane (H, W) -> RGB float (3, H, W) with R = G = B."""
    y_off, y_scale, _, _ = _levels(spec)
    yf = ((y.float() - y_off) / y_scale).clamp_(0.0, 1.0)
    return yf.expand(3, -1, -1).contiguous()
