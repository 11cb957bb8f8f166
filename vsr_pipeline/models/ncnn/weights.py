"""Read an ncnn ``.bin`` weight file in the order the layers of its graph ask for it.

The file is the concatenation of every layer's weight buffers, nothing else: no names, no
shapes. Each layer knows how many values it reads and whether a buffer starts with a
4-byte storage tag. ncnn reads Convolution, Deconvolution and InnerProduct weights
*tagged* and biases, slopes and scales *raw*:

* tag ``0x00000000`` or ``0x0002C056``: float32 values follow;
* tag ``0x01306B47``: float16 values follow, padded to a multiple of 4 bytes;
* tag ``0x000D4B38``: int8 values (needs int8 scale data vsrpipe does not run);
* any other tag: a 256-entry float32 lookup table, then one uint8 index per value, padded
  to a multiple of 4 bytes;
* a raw buffer is float32 values with no tag.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from vsr_pipeline.errors import ModelError

TAG_FP32 = 0x00000000
TAG_FP32_SCALED = 0x0002C056
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38


def _aligned(nbytes: int) -> int:
    """``nbytes`` rounded up to the 4-byte alignment of ncnn's buffers."""
    return (nbytes + 3) // 4 * 4


class WeightReader:
    """Sequential reader over the bytes of one ``.bin`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._data = path.read_bytes()
        except FileNotFoundError:
            raise ModelError(f"ncnn weights '{path}' do not exist; the .bin must lie beside its .param.") from None
        except OSError as err:
            raise ModelError(f"cannot read the ncnn weights '{path}': {err}.") from None
        self._offset = 0

    def _take(self, nbytes: int, layer: str) -> bytes:
        end = self._offset + nbytes
        if end > len(self._data):
            raise ModelError(
                f"ncnn weights '{self.path}' are truncated: layer '{layer}' reads past the end of the "
                f"file ({len(self._data)} bytes), so they do not belong to this graph or the download is incomplete."
            )
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def raw(self, count: int, layer: str) -> np.ndarray:
        """``count`` untagged float32 values (biases, slopes, scales)."""
        return np.frombuffer(self._take(4 * count, layer), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, layer: str) -> np.ndarray:
        """``count`` values stored behind a storage tag (convolution and matrix weights)."""
        (tag,) = struct.unpack("<I", self._take(4, layer))
        if tag in (TAG_FP32, TAG_FP32_SCALED):
            return self.raw(count, layer)
        if tag == TAG_FP16:
            data = self._take(_aligned(2 * count), layer)
            return np.frombuffer(data, dtype="<f2", count=count).astype(np.float32)
        if tag == TAG_INT8:
            raise ModelError(
                f"ncnn weights '{self.path}' store layer '{layer}' as int8, which vsrpipe cannot run; "
                "use the float32 or float16 export of the model."
            )
        table = np.frombuffer(self._take(256 * 4, layer), dtype="<f4")
        index = np.frombuffer(self._take(_aligned(count), layer), dtype=np.uint8, count=count)
        return table[index].astype(np.float32)

    def finish(self) -> None:
        """Check that the graph read the whole file; leftover bytes mean a mismatched pair."""
        if self._offset != len(self._data):
            raise ModelError(
                f"ncnn weights '{self.path}' hold {len(self._data)} bytes but the graph reads only "
                f"{self._offset}; the .bin does not belong to this .param."
            )
