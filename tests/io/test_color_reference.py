"""Our YUV ⇄ RGB conversion checked against independent implementations.

The references are zimg (FFmpeg's ``zscale`` filter, run through the ``ffmpeg`` binary
that :func:`find_ffmpeg` finds) and swscale (PyAV's ``VideoFrame.reformat``). Both are
told the matrix, range and chroma siting explicitly, so nothing depends on how our probe
reads the stream's tags; the reader and writer tests then check that the tags of a real
stream reach the conversion.

The test frames have *sharp chroma edges*: every chroma sample is independently at one
of two far-apart levels, so any change of chroma siting or interpolation (left- instead
of centre-sited, ``align_corners=True``, nearest instead of bilinear) changes output
pixels by tens of 8-bit steps, and a range mix-up (full read as limited) by ≥ 16 steps.

Tolerances, derived from the conversions rather than tuned:

* **zimg, YUV → RGB, float output**: zimg and we both evaluate the same affine formula
  (bilinear centre-sited chroma upsampling, then the matrix) in float32 on the same
  integer codes, so they differ only by float32 rounding: a handful of ulps of values
  ≤ 1, i.e. ≤ 1e-6. The tolerance is **1e-5** (below one 16-bit code, 1.5e-5). Measured:
  ≤ 2.4e-7 on every combination.
* **swscale, YUV → RGB, rgb48le output**: swscale works in fixed point and its result
  carries about 8 bits of precision whatever the output depth (measured over 5 seeds:
  ≤ 1.0001/255 for 8-bit input, ≤ 0.997/255 for 10-bit limited range, ≤ 0.254/255 for
  10-bit full range), so the tolerance is **1.25/255**, still far below what a range
  mix-up (≥ 16/255) or a siting error on these edges (tens of /255) does. swscale is used for
  4:4:4 and 4:2:2 (with ``FULL_CHR_H_INT | ACCURATE_RND``: bilinear, centre-sited); its
  4:2:0 path in this FFmpeg build does not interpolate chroma that way, so 4:2:0 siting is
  checked against zimg only.
* **zimg, RGB → YUV, integer output at the target depth**: both round the same real value
  to the nearest code; a value within float32 rounding of a tie may go either way, so
  **±1 code** per sample (measured: almost all samples equal). For subsampled chroma our
  writer averages the full-resolution chroma over each 2×1 / 2×2 block (centre siting);
  the reference is the block average of zimg's 4:4:4 *integer* chroma, which adds at
  most 0.5 code of rounding on top, so **±1 code** still holds.
* **Round trips (hypothesis)**: RGB → YUV → RGB moves each of Y, Cb, Cr by at most half a
  code, which the matrix spreads into R, G, B with gains computed from Kr, Kb in
  :func:`_round_trip_bound`; YUV → RGB → YUV is exact on 4:4:4 codes whose colour is
  inside the RGB cube (nothing clamped).
"""

from __future__ import annotations

import os
import subprocess

import av
import numpy as np
import pytest
import torch
from av.video.reformatter import Interpolation
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vsr_pipeline.config import EncodeOptions
from vsr_pipeline.io.color import _MATRIX_COEFFS, ColorSpec, rgb_to_yuv, yuv_to_rgb
from vsr_pipeline.io.encoding import find_ffmpeg
from vsr_pipeline.io.probe import probe
from vsr_pipeline.io.reader import VideoReader, frame_to_rgb
from vsr_pipeline.io.writer import VideoWriter

FFMPEG = find_ffmpeg()
MATRICES = {"bt601": ("470bg", "ITU601", 6), "bt709": ("709", "ITU709", 1), "bt2020": ("2020_ncl", "BT2020", 9)}
SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "444": (0, 0)}
H, W = 16, 24
ZIMG_TOL = 1e-5
SWS_TOL = 1.25 / 255
# More examples: VSR_HYPOTHESIS_EXAMPLES=2000 pytest tests/io/test_color_reference.py
EXAMPLES = int(os.environ.get("VSR_HYPOTHESIS_EXAMPLES", "60"))


def _pix_fmt(sub: str, depth: int) -> str:
    return f"yuv{sub}p" + ("" if depth == 8 else f"{depth}le")


def _dtype(depth: int):
    return np.dtype(np.uint8) if depth == 8 else np.dtype("<u2")


def _has_zscale() -> bool:
    out = subprocess.run([FFMPEG, "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == ["zscale"] for line in out.splitlines() if line.strip())


needs_zscale = pytest.mark.skipif(not _has_zscale(), reason=f"{FFMPEG} has no zscale filter (FFmpeg built without zimg)")


def _ffmpeg(raw: bytes, pix_fmt: str, vf: str, out_fmt: str, w: int = W, h: int = H) -> bytes:
    cmd = [FFMPEG, "-v", "error", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}", "-i", "-",
           "-vf", f"{vf},format={out_fmt}", "-f", "rawvideo", "-"]
    return subprocess.run(cmd, input=raw, capture_output=True, check=True).stdout


def zimg_yuv_to_rgb(planes, sub: str, depth: int, matrix: str, full: bool) -> np.ndarray:
    """zimg's float RGB (3, H, W) in [0, 1] (clamped like ours) of integer Y, U, V planes."""
    zm = MATRICES[matrix][0]
    raw = b"".join(np.asarray(p).astype(_dtype(depth)).tobytes() for p in planes)
    vf = (f"zscale=matrixin={zm}:rangein={'full' if full else 'limited'}:chromalin=center:filter=bilinear"
          f":matrix={zm}:range=full")
    g, b, r = np.frombuffer(_ffmpeg(raw, _pix_fmt(sub, depth), vf, "gbrpf32le"), np.float32).reshape(3, H, W)
    return np.clip(np.stack([r, g, b]), 0.0, 1.0)


def zimg_rgb_to_yuv444(rgb: np.ndarray, depth: int, matrix: str, full: bool) -> np.ndarray:
    """zimg's integer Y, U, V (3, H, W) at ``depth`` of float RGB (3, H, W)."""
    zm = MATRICES[matrix][0]
    r, g, b = rgb.astype(np.float32)
    raw = np.stack([g, b, r]).astype("<f4").tobytes()
    vf = f"zscale=matrixin=gbr:rangein=full:matrix={zm}:range={'full' if full else 'limited'}:dither=none"
    out = _ffmpeg(raw, "gbrpf32le", vf, _pix_fmt("444", depth))
    return np.frombuffer(out, _dtype(depth)).reshape(3, H, W).astype(np.int64)


def _code_ranges(depth: int, full: bool):
    m = 1 << (depth - 8)
    mx = (1 << depth) - 1
    return ((0, mx), (0, mx)) if full else ((16 * m, 235 * m), (16 * m, 240 * m))


def sharp_chroma_planes(sub: str, depth: int, full: bool, seed: int = 0):
    """Random luma; every chroma sample independently near the bottom or top of its range."""
    rng = np.random.default_rng(seed)
    (ylo, yhi), (clo, chi) = _code_ranges(depth, full)
    sx, sy = SUBSAMPLING[sub]
    y = rng.integers(ylo, yhi + 1, (H, W))
    ch, cw = H >> sy, W >> sx
    u = np.where(rng.random((ch, cw)) < 0.5, clo, chi)
    v = np.where(rng.random((ch, cw)) < 0.5, clo, chi)
    return y, u, v


def _ours(planes, spec: ColorSpec) -> np.ndarray:
    return yuv_to_rgb(*(torch.from_numpy(np.asarray(p).astype(np.int32)) for p in planes), spec).numpy()


def _frame(planes, pix_fmt: str, depth: int) -> av.VideoFrame:
    f = av.VideoFrame(W, H, pix_fmt)
    dt = _dtype(depth)
    for plane, arr in zip(f.planes, planes):
        buf = np.zeros((arr.shape[0], plane.line_size // dt.itemsize), dt)
        buf[:, : arr.shape[1]] = arr
        plane.update(buf.tobytes())
    return f


ALL = [
    pytest.param(sub, depth, matrix, full, id=f"{sub}-{depth}bit-{matrix}-{'full' if full else 'limited'}")
    for sub in SUBSAMPLING for depth in (8, 10) for matrix in MATRICES for full in (False, True)
]


# ---- YUV -> RGB -------------------------------------------------------------------------


@needs_zscale
@pytest.mark.parametrize("sub,depth,matrix,full", ALL)
def test_yuv_to_rgb_matches_zimg(sub, depth, matrix, full):
    """yuv_to_rgb equals zimg (bilinear, centre-sited chroma) to float32 rounding (≤ 1e-5)."""
    planes = sharp_chroma_planes(sub, depth, full)
    ours = _ours(planes, ColorSpec(matrix=matrix, full_range=full, bit_depth=depth))
    theirs = zimg_yuv_to_rgb(planes, sub, depth, matrix, full)
    assert np.abs(ours - theirs).max() <= ZIMG_TOL


@pytest.mark.parametrize("sub", ["444", "422"])
@pytest.mark.parametrize("depth", [8, 10])
@pytest.mark.parametrize("matrix", list(MATRICES))
@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
def test_frame_to_rgb_matches_swscale(sub, depth, matrix, full):
    """The reader's frame conversion agrees with swscale within its fixed-point precision (1.25/255)."""
    planes = sharp_chroma_planes(sub, depth, full, seed=1)
    frame = _frame(planes, _pix_fmt(sub, depth), depth)
    ours = frame_to_rgb(frame, ColorSpec(matrix=matrix, full_range=full, bit_depth=depth)).permute(1, 2, 0).numpy()
    flags = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    theirs = frame.reformat(format="rgb48le", src_colorspace=MATRICES[matrix][1],
                            src_color_range="JPEG" if full else "MPEG", interpolation=flags)
    theirs = theirs.to_ndarray().astype(np.float32) / 65535
    assert np.abs(ours - theirs).max() <= SWS_TOL


def _encode_lossless(path, planes, sub: str, depth: int, matrix: str, full: bool, n: int = 2):
    """A lossless H.264 stream (qp 0) of the given planes, tagged with matrix and range."""
    raw = b"".join(np.asarray(p).astype(_dtype(depth)).tobytes() for p in planes) * n
    pix = _pix_fmt(sub, depth)
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix, "-s", f"{W}x{H}", "-r", "25",
           "-color_range", "pc" if full else "tv", "-colorspace", {"bt601": "bt470bg", "bt709": "bt709",
                                                                   "bt2020": "bt2020nc"}[matrix],
           "-i", "-", "-c:v", "libx264", "-qp", "0", "-pix_fmt", pix,
           "-color_range", "pc" if full else "tv",
           "-colorspace", {"bt601": "bt470bg", "bt709": "bt709", "bt2020": "bt2020nc"}[matrix], str(path)]
    subprocess.run(cmd, input=raw, capture_output=True, check=True)


@needs_zscale
@pytest.mark.parametrize("sub,depth,matrix,full", [
    ("420", 8, "bt709", True), ("420", 8, "bt601", False), ("420", 10, "bt2020", True),
    ("422", 10, "bt709", False), ("444", 8, "bt2020", True), ("444", 10, "bt601", True),
])
def test_reader_matches_zimg_on_tagged_stream(tmp_path, sub, depth, matrix, full):
    """VideoReader on a lossless stream tagged full/limited range gives zimg's RGB of the planes.

    This is what catches a probe that reads a full-range stream as limited (or the other
    way round): the reference is told the true range, not what our probe found.
    """
    planes = sharp_chroma_planes(sub, depth, full, seed=2)
    path = tmp_path / "tagged.mp4"
    _encode_lossless(path, planes, sub, depth, matrix, full)
    with av.open(str(path)) as c:  # the codec really is lossless, and the tags are there
        f = next(c.decode(video=0))
        assert (f.color_range == 2) == full
        decoded = [np.frombuffer(p, _dtype(depth)).reshape(p.height, -1)[:, : p.width] for p in f.planes[:3]]
    for a, b in zip(decoded, planes):
        np.testing.assert_array_equal(a, b)
    info = probe(path)
    frames = list(VideoReader(path, info=info))
    assert len(frames) == 2
    theirs = zimg_yuv_to_rgb(planes, sub, depth, matrix, full)
    assert np.abs(frames[0].rgb.numpy() - theirs).max() <= ZIMG_TOL


# ---- RGB -> YUV -------------------------------------------------------------------------


def _sharp_rgb(seed: int = 3) -> np.ndarray:
    """Random RGB with independent per-pixel colours: chroma edges at every pixel."""
    return np.random.default_rng(seed).random((3, H, W)).astype(np.float32)


def _box(plane: np.ndarray, sx: int, sy: int) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(h >> sy, 1 << sy, w >> sx, 1 << sx).mean(axis=(1, 3))


@needs_zscale
@pytest.mark.parametrize("sub,depth,matrix,full", ALL)
def test_rgb_to_yuv_matches_zimg(sub, depth, matrix, full):
    """rgb_to_yuv: luma equals zimg's to ±1 code; chroma equals the block mean of zimg's 4:4:4 chroma to ±1 code."""
    rgb = _sharp_rgb()
    ref = zimg_rgb_to_yuv444(rgb, depth, matrix, full)
    sx, sy = SUBSAMPLING[sub]
    y, u, v = (p.numpy() for p in rgb_to_yuv(torch.from_numpy(rgb), ColorSpec(matrix, full, depth), (sx, sy)))
    assert np.abs(y - ref[0]).max() <= 1
    assert (y == ref[0]).mean() > 0.95  # rounding ties are rare: the two agree almost everywhere
    for ours, theirs in ((u, ref[1]), (v, ref[2])):
        assert ours.shape == (H >> sy, W >> sx)
        assert np.abs(ours - _box(theirs, sx, sy)).max() <= 1


@needs_zscale
@pytest.mark.parametrize("pix_fmt,depth,matrix,full,sub", [
    ("yuv420p", 8, "bt601", True, "420"),
    ("yuv420p", 8, "bt709", False, "420"),
    ("yuv444p", 8, "bt709", True, "444"),
    ("yuv422p10le", 10, "bt2020", False, "422"),
    ("yuv420p10le", 10, "bt709", True, "420"),
])
def test_writer_matches_zimg(tmp_path, pix_fmt, depth, matrix, full, sub):
    """The writer encodes (losslessly, ffv1) the planes zimg computes, with the input's range tag."""
    src = tmp_path / "src.mp4"
    _encode_lossless(src, sharp_chroma_planes(sub, depth, full), sub, depth, matrix, full, n=1)
    info = probe(src)
    out = tmp_path / "out.mkv"
    rgb = _sharp_rgb(seed=4)
    with VideoWriter(out, info, (W, H), EncodeOptions(codec="ffv1", pix_fmt=pix_fmt)) as w:
        w.write(torch.from_numpy(rgb), 0, info.time_base)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.color_range == (2 if full else 1)
        assert s.codec_context.colorspace == MATRICES[matrix][2] or (matrix == "bt601" and s.codec_context.colorspace in (5, 6))
        f = next(c.decode(video=0))
        assert f.format.name == pix_fmt
        planes = [np.frombuffer(p, _dtype(depth)).reshape(p.height, -1)[:, : p.width].astype(np.int64) for p in f.planes[:3]]
    ref = zimg_rgb_to_yuv444(rgb, depth, matrix, full)
    sx, sy = SUBSAMPLING[sub]
    assert np.abs(planes[0] - ref[0]).max() <= 1
    for ours, theirs in zip(planes[1:], ref[1:]):
        assert np.abs(ours - _box(theirs, sx, sy)).max() <= 1


# ---- round trips (hypothesis) -----------------------------------------------------------


def _round_trip_bound(spec: ColorSpec) -> float:
    """Largest |RGB error| of RGB -> YUV -> RGB: half a code in Y, Cb, Cr through the inverse matrix."""
    kr, kb = _MATRIX_COEFFS[spec.matrix]
    kg = 1 - kr - kb
    mx = (1 << spec.bit_depth) - 1
    m = 1 << (spec.bit_depth - 8)
    y_scale, c_scale = (mx, mx) if spec.full_range else (219 * m, 224 * m)
    ey, ec = 0.5 / y_scale, 0.5 / c_scale
    gains = [2 * (1 - kr), 2 * (1 - kb), (2 * kr * (1 - kr) + 2 * kb * (1 - kb)) / kg]  # R (Cr), B (Cb), G (both)
    return ey + max(gains) * ec + 1e-6


specs = st.builds(ColorSpec, matrix=st.sampled_from(sorted(MATRICES)), full_range=st.booleans(),
                  bit_depth=st.sampled_from([8, 10, 12]))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, sub=st.sampled_from(sorted(SUBSAMPLING)), seed=st.integers(0, 2**32 - 1),
       extremes=st.booleans())
def test_rgb_yuv_rgb_round_trip_is_within_quantisation(spec, sub, seed, extremes):
    """RGB -> YUV -> RGB stays within half a code per component, spread by the matrix.

    4:4:4: any RGB (``extremes``: corners of the cube, where codes clamp). 4:2:x: chroma
    must survive subsampling, so the picture is one colour plus a random grey per pixel
    (adding grey changes Y only): random luma detail, uniform chroma.
    """
    sx, sy = SUBSAMPLING[sub]
    rng = np.random.default_rng(seed)
    h, w = 4 << sy, 6 << sx
    if sub == "444":
        rgb = rng.random((3, h, w))
        if extremes:
            rgb = np.round(rgb)
    else:
        colour = rng.random((3, 1, 1)) * 0.5
        grey = rng.random((1, h, w)) * 0.5
        if extremes:  # hard luma edges: grey 0 or 0.5 per pixel
            grey = np.round(grey * 2) / 2
        rgb = colour + grey
    rgb = torch.from_numpy(rgb).float()
    back = yuv_to_rgb(*rgb_to_yuv(rgb, spec, (sx, sy)), spec)
    assert (back - rgb).abs().max().item() <= _round_trip_bound(spec)


@settings(max_examples=EXAMPLES, deadline=None)
@given(spec=specs, data=st.data())
def test_yuv_rgb_yuv_is_exact_in_gamut(spec, data):
    """4:4:4 codes whose colour lies inside the RGB cube come back unchanged from YUV -> RGB -> YUV."""
    (ylo, yhi), (clo, chi) = _code_ranges(spec.bit_depth, spec.full_range)
    n = 16
    y = torch.tensor(data.draw(st.lists(st.integers(ylo, yhi), min_size=n, max_size=n)), dtype=torch.int32)
    u = torch.tensor(data.draw(st.lists(st.integers(clo, chi), min_size=n, max_size=n)), dtype=torch.int32)
    v = torch.tensor(data.draw(st.lists(st.integers(clo, chi), min_size=n, max_size=n)), dtype=torch.int32)
    rgb = yuv_to_rgb(y[None], u[None], v[None], spec)  # (3, 1, n), clamped
    inside = ((rgb > 1e-6) & (rgb < 1 - 1e-6)).all(dim=0)[0]
    assume(bool(inside.any()))
    y2, u2, v2 = rgb_to_yuv(rgb, spec, (0, 0))
    for a, b in ((y, y2[0]), (u, u2[0]), (v, v2[0])):
        assert torch.equal(a[inside], b[inside])
