"""Write tiny ncnn graphs for tests, and run them with the ``ncnn`` package as a reference.

:class:`GraphWriter` assembles a ``.param`` text and the matching ``.bin`` bytes: each
``layer(...)`` call appends one layer line and, through ``weights(...)``/``raw(...)``, the
buffers that layer reads, in the order ncnn reads them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

FP16_TAG = 0x01306B47


class GraphWriter:
    """Collects layer lines and weight bytes; ``write()`` saves ``<name>.param`` and ``.bin``."""

    def __init__(self, seed: int = 0) -> None:
        self.lines: list[str] = []
        self.blobs: set[str] = set()
        self.data = bytearray()
        self.rng = np.random.default_rng(seed)

    def layer(self, type_: str, name: str, bottoms: list[str], tops: list[str], params: str = "") -> None:
        self.lines.append(f"{type_} {name} {len(bottoms)} {len(tops)} {' '.join(bottoms + tops)} {params}".rstrip())
        self.blobs.update(bottoms + tops)

    def weights(self, count: int, fp16: bool = False, scale: float = 0.3) -> None:
        """A tagged buffer of ``count`` random values (float32 tag 0, or float16 padded to 4 bytes)."""
        values = (self.rng.standard_normal(count) * scale).astype(np.float32)
        if fp16:
            self.data += struct.pack("<I", FP16_TAG) + values.astype("<f2").tobytes()
            self.data += b"\0" * (-len(self.data) % 4)
        else:
            self.data += struct.pack("<I", 0) + values.astype("<f4").tobytes()

    def raw(self, count: int, scale: float = 0.3, offset: float = 0.0) -> None:
        """An untagged float32 buffer (bias, slope, scale)."""
        values = (self.rng.standard_normal(count) * scale + offset).astype("<f4")
        self.data += values.tobytes()

    def write(self, folder: Path, name: str = "g") -> Path:
        param = folder / f"{name}.param"
        param.write_text(f"7767517\n{len(self.lines)} {len(self.blobs)}\n" + "\n".join(self.lines) + "\n")
        (folder / f"{name}.bin").write_bytes(bytes(self.data))
        return param


def ncnn_reference(param: Path, x: np.ndarray, input_blob: str, output_blob: str) -> np.ndarray:
    """What ncnn's CPU float32 path computes for one (C, H, W) image ``x``."""
    import ncnn

    net = ncnn.Net()
    opt = net.opt
    opt.use_vulkan_compute = False
    for flag in (
        "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
        "use_bf16_packed", "use_packing_layout", "use_winograd_convolution", "use_sgemm_convolution",
    ):  # fmt: skip
        setattr(opt, flag, False)
    opt.num_threads = 1
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(param.with_suffix(".bin"))) == 0
    image = np.ascontiguousarray(x, dtype=np.float32)
    mat = ncnn.Mat(image).clone()  # owned memory: in-place layers write into a view of numpy's and crash
    extractor = net.create_extractor()
    extractor.input(input_blob, mat)
    status, out = extractor.extract(output_blob)
    assert status == 0, f"ncnn could not run {param.name}"
    return np.array(out).copy()
