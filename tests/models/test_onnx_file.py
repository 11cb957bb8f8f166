"""``--model FILE.onnx``: ONNX graphs converted to torch, checked against onnxruntime, and every refusal."""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clips import make_clip, read_back
from torch import nn

from vsr_pipeline.cli import main
from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.onnx_file import OnnxModel
from vsr_pipeline.models.registry import load_model
from vsr_pipeline.runtimes import build_runtime, installed

pytest.importorskip("onnx2torch")  # the onnx-models extra; it brings onnx
ort = pytest.importorskip("onnxruntime")  # the reference the converted graphs are checked against

import onnx
from onnx import TensorProto, helper


class ShuffleX2(nn.Module):
    """conv + PixelShuffle x2, initialised to nearest-neighbour upscaling with red and blue swapped, plus a little noise.

    Its output is smooth (it survives the encoder) and far from any plain upscale of the input.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.mul_(0.02)
            self.conv.bias.zero_()
            for c in range(3):
                self.conv.weight[4 * c : 4 * c + 4, 2 - c, 1, 1] += 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.pixel_shuffle(self.conv(x), 2)


class ResizeX(nn.Module):
    """conv + bilinear Resize by ``factor`` (an ONNX Resize node with a scales input)."""

    def __init__(self, factor: float = 3, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.factor = factor
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.conv(x), scale_factor=self.factor, mode="bilinear", align_corners=False)


class PlainResize(nn.Module):
    """Bicubic x2 with no weights at all: a graph that converts but has nothing to adapt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)


class BatchOfOne(ShuffleX2):
    """ShuffleX2 whose graph hard-codes a batch of one (a Reshape to 1×3×2H×2W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return super().forward(x).reshape(1, 3, 2 * h, 2 * w)


def export(net: nn.Module, path: Path, *, channels: int = 3, dynamic: bool = True, batch: bool = True) -> Path:
    """``net`` exported to ``path`` at opset 17, with dynamic height/width (and batch) axes unless told otherwise."""
    axes = {2: "h", 3: "w"} if dynamic else {}
    if batch and dynamic:
        axes[0] = "n"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (torch.rand(1, channels, 16, 16),), str(path), dynamo=False, opset_version=17,
            input_names=["input"], output_names=["output"], dynamic_axes={"input": axes, "output": axes} if axes else None,
        )
    return path


def onnxruntime_output(path: Path, image: np.ndarray) -> np.ndarray:
    """onnxruntime's output for ``image`` (N, 3, H, W) float32, image by image (it runs the file as it is)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: one[None]})[0] for one in image.astype(np.float32)])


def one_node_graph(path: Path, op: str, *, domain: str = "", dims: tuple = (1, 3, "h", "w"), dtype: int = TensorProto.FLOAT, inputs: int = 1) -> Path:
    """A graph of one ``op`` node (in ``domain``) on ``inputs`` inputs of shape ``dims`` and element type ``dtype``."""
    names = ["x", "z"][:inputs]
    values = [helper.make_tensor_value_info(n, dtype, list(dims)) for n in names]
    y = helper.make_tensor_value_info("y", dtype, list(dims))
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph([helper.make_node(op, names, ["y"], domain=domain)], "g", values, [y])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


@pytest.mark.parametrize(("net", "scale"), [(ShuffleX2(), 2), (ResizeX(3), 3)], ids=["pixelshuffle-x2", "resize-x3"])
def test_loads_and_matches_onnxruntime(tmp_path, net, scale):
    path = export(net, tmp_path / "sr-net.onnx")
    model = load_model(str(path))
    assert isinstance(model, OnnxModel)
    info = model.info
    assert (info.name, info.scale, info.frames, info.channels, info.trainable) == ("sr-net", scale, 1, 3, True)
    x = torch.rand(2, 1, 3, 17, 23)  # odd sizes: the height and width really are dynamic
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 17 * scale, 23 * scale)
    assert np.abs(y.numpy() - onnxruntime_output(path, x[:, 0].numpy())).max() < 1e-5
    window = torch.rand(1, 5, 3, 8, 10)  # a full window: the centre frame is upscaled
    with torch.no_grad():
        assert torch.equal(model(window), model(window[:, 2:3]))


def test_gradients_reach_the_converted_weights(tmp_path):
    model = load_model(str(export(ShuffleX2(), tmp_path / "x2.onnx")))
    model(torch.rand(1, 1, 3, 8, 8)).square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert grads and all(g is not None and bool(g.abs().sum() > 0) for g in grads)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_converted_graph_runs_on_the_exported_runtimes(tmp_path, runtime):
    """The runtimes export the converted module again; plain and adapted weights give torch's output."""
    if not installed(runtime):
        pytest.skip(f"{runtime} is not installed")
    model = load_model(str(export(ShuffleX2(), tmp_path / "x2.onnx")))
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        next(tuned.parameters()).add_(0.1)
        x = torch.rand(2, 1, 3, 12, 14)
        rt = build_runtime(runtime, model, torch.device("cpu"))
        assert (rt.run(x) - model(x)).abs().max().item() < 1e-5
        assert (rt.run(x, tuned) - tuned(x)).abs().max().item() < 1e-5
        assert (tuned(x) - model(x)).abs().max().item() > 1e-2


def test_fixed_batch_graph_runs_a_batch_image_by_image(tmp_path):
    path = export(BatchOfOne(), tmp_path / "one.onnx", batch=False)
    model = load_model(str(path))
    x = torch.rand(3, 1, 3, 9, 11)
    with torch.no_grad():
        y = model(x)
    assert np.abs(y.numpy() - onnxruntime_output(path, x[:, 0].numpy())).max() < 1e-5


def test_graph_without_weights_is_run_only(tmp_path):
    path = export(PlainResize(), tmp_path / "bicubic.onnx")
    model = load_model(str(path))
    assert (model.info.scale, model.info.trainable) == (2, False)
    x = torch.rand(1, 1, 3, 12, 14)
    with torch.no_grad():
        assert np.abs(model(x).numpy() - onnxruntime_output(path, x[:, 0].numpy())).max() < 1e-5


def _rgb(frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB."""
    return frame.to_ndarray(format="rgb24")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def _enhance(clip, out: Path, model: Path, *extra: str):
    return CliRunner().invoke(main, ["enhance", str(clip.path), str(out), "-s", "2", "--model", str(model), *extra], catch_exceptions=False)


@pytest.fixture
def shuffle_file(tmp_path) -> Path:
    return export(ShuffleX2(), tmp_path / "shuffle-x2.onnx")


def test_enhance_end_to_end_without_adaptation(tmp_path, shuffle_file):
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    out = tmp_path / "out.mkv"
    r = _enhance(clip, out, shuffle_file, "--adapt", "none", "--codec", "ffv1", "--pix-fmt", "yuv444p")
    assert r.exit_code == 0, r.output
    back, source = read_back(out), read_back(clip.path)
    assert back["size"] == (64, 48) and len(back["frames"]) == 3
    for lr, hr in zip(source["frames"], back["frames"]):
        expected = onnxruntime_output(shuffle_file, _rgb(lr).transpose(2, 0, 1)[None] / 255.0)[0]
        expected = (np.clip(expected, 0, 1) * 255).round().transpose(1, 2, 0)
        assert _psnr(_rgb(hr), expected) > 30  # measured 35-36.5 dB (colour conversion); a plain upscale scores 15-16 dB


def test_enhance_online_adaptation_tunes_the_converted_weights(tmp_path, shuffle_file):
    clip = make_clip(tmp_path / "in.mp4", n=3, size=(32, 24))
    plain, tuned, report = tmp_path / "plain.mkv", tmp_path / "tuned.mkv", tmp_path / "run.json"
    assert _enhance(clip, plain, shuffle_file, "--adapt", "none").exit_code == 0
    r = _enhance(clip, tuned, shuffle_file, "--adapt", "online", "--steps-per-frame", "1", "--adapt-lr", "0.001",
                 "--no-lr-search", "--guard", "0", "--report", str(report))
    assert r.exit_code == 0, r.output
    assert json.loads(report.read_text())["adapt"]["totals"]["steps"] >= 1
    a, b = read_back(plain)["frames"], read_back(tuned)["frames"]
    assert max(float(np.abs(_rgb(x).astype(int) - _rgb(y).astype(int)).mean()) for x, y in zip(a, b)) > 0.5  # the steps changed the output


def test_adapt_on_run_only_graph_is_refused(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    out = tmp_path / "out.mp4"
    r = _enhance(clip, out, export(PlainResize(), tmp_path / "bicubic.onnx"), "--adapt", "online")
    assert r.exit_code == 7 and "The model 'bicubic' has no weights to adapt; use --adapt none or another model." in r.output
    assert not out.exists()


def _fixed_size(p: Path) -> Path:
    return export(ShuffleX2(), p, dynamic=False)


def _gray_output(p: Path) -> Path:
    net = ResizeX(2)
    net.conv = nn.Conv2d(3, 1, 3, padding=1)
    return export(net, p)


def _one_channel(p: Path) -> Path:
    return export(ResizeX(2, channels=1), p, channels=1)


def _x15(p: Path) -> Path:
    return export(ResizeX(1.5), p)


def _truncated(p: Path) -> Path:
    export(ShuffleX2(), p)
    p.write_bytes(p.read_bytes()[:200])
    return p


def _text(p: Path) -> Path:
    p.write_text("this is not a model\n")
    return p


def _binary(p: Path) -> Path:
    p.write_bytes(bytes(range(256)) * 4)
    return p


REFUSALS = [
    (lambda p: one_node_graph(p, "Foo", domain="com.example"), r"ONNX model '[^']*bad\.onnx' uses operator 'com\.example\.Foo', which vsrpipe cannot run"),
    (lambda p: one_node_graph(p, "Hardmax"), r"ONNX model '[^']*bad\.onnx' uses operator 'Hardmax', which vsrpipe cannot run"),
    (lambda p: one_node_graph(p, "Col2Im"), r"ONNX model '[^']*bad\.onnx' is not a readable ONNX model \(ValidationError: No Op registered for Col2Im"),
    (lambda p: one_node_graph(p, "Add", inputs=2), r"ONNX model '[^']*bad\.onnx' has 2 input\(s\) and 1 output\(s\); vsrpipe runs graphs with one N×3×H×W image input"),
    (lambda p: one_node_graph(p, "Identity", dtype=TensorProto.FLOAT16), r"ONNX model '[^']*bad\.onnx' takes float16 input; only float32 graphs"),
    (lambda p: one_node_graph(p, "Identity", dims=(3, "h", "w")), r"ONNX model '[^']*bad\.onnx' takes a rank-3 input; vsrpipe runs graphs that take an N×3×H×W image batch"),
    (lambda p: one_node_graph(p, "Identity", dims=(2, 3, "h", "w")), r"ONNX model '[^']*bad\.onnx' takes batches of exactly 2 images"),
    (_gray_output, r"ONNX model '[^']*bad\.onnx' turns a 1×3×64×96 image into 1×1×128×192, not a 1×3×sH×sW RGB image"),
    (_fixed_size, r"ONNX model '[^']*bad\.onnx' takes only 16×16 images \(its input size is fixed\).*export it with dynamic height and width axes"),
    (_one_channel, r"ONNX model '[^']*bad\.onnx' takes 1-channel input \(N×1×H×W\); only RGB \(3-channel\) models are supported"),
    (_x15, r"ONNX model '[^']*bad\.onnx' turns a 64×96 image into 96×144, which is not a whole-number upscale"),
    (_truncated, r"ONNX model '[^']*bad\.onnx' is not a readable ONNX model .*; it may be corrupt or truncated"),
    (_binary, r"ONNX model '[^']*bad\.onnx' is not a readable ONNX model .*; it may be corrupt or truncated"),
    (_text, r"ONNX model '[^']*bad\.onnx' is a text file, not an ONNX model"),
]


@pytest.mark.parametrize(("make", "message"), REFUSALS, ids=["custom-op", "unmapped-op", "invalid-node", "two-inputs", "fp16", "rank-3", "batch-of-2", "gray-output", "fixed-size", "1-channel", "x1.5", "truncated", "binary", "text"])
def test_refusals_are_one_sentence_and_leave_no_output(tmp_path, make, message):
    path = make(tmp_path / "bad.onnx")
    with pytest.raises(ModelError, match=message) as err:
        load_model(str(path))
    assert str(err.value).endswith(".") and "\n" not in str(err.value)
    clip = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    out = tmp_path / "out.mp4"
    r = _enhance(clip, out, path)
    assert r.exit_code == 5 and str(err.value)[:60] in r.output.replace("\n", " ")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_missing_converter_names_the_extra(tmp_path, shuffle_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # `import onnx2torch` now raises ImportError
    with pytest.raises(ModelError, match=r"^ONNX model '[^']*shuffle-x2\.onnx' needs the onnx2torch converter; install it with `pip install 'vsr-pipeline\[onnx-models\]'`\.$"):
        load_model(str(shuffle_file))


class UNetX2(nn.Module):
    """A two-level U-Net x2: its skip additions need H and W in multiples of 4 (other sizes raise)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inc = nn.Conv2d(3, 8, 3, padding=1)
        self.down1 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.out = nn.Conv2d(8, 12, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.inc(x)
        b = self.down1(a)
        c = self.down2(b)
        b = b + nn.functional.interpolate(c, scale_factor=2.0, mode="nearest")
        a = a + nn.functional.interpolate(b, scale_factor=2.0, mode="nearest")
        return nn.functional.pixel_shuffle(self.out(a), 2)


def test_a_graph_that_needs_a_multiple_of_four_is_padded_to_it(tmp_path):
    net = UNetX2().eval()
    path = export(net, tmp_path / "unet.onnx")
    model = load_model(str(path))
    assert model.info.multiple_of == 4 and model.info.scale == 2
    x = torch.rand(1, 3, 3, 17, 22)  # neither side a multiple of 4: the bare graph raises
    with torch.no_grad():
        with pytest.raises(Exception):
            net(x[:, 1])
        y = model(x)
        padded = nn.functional.pad(x[:, 1], (0, 2, 0, 3), mode="reflect")
        want = net(padded)[..., :34, :44]
    assert y.shape == (1, 3, 34, 44)
    assert float((y - want).abs().max()) < 1e-5
