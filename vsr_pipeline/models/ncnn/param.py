"""Parse ncnn's text ``.param`` graph format into plain dataclasses.

A ``.param`` file is the magic number 7767517, a line ``<layer count> <blob count>``, then
one line per layer::

    <type> <name> <bottom count> <top count> <bottom blobs...> <top blobs...> <key=value...>

A key ``0..19`` holds an int (``0=3``) or a float (``1=0.5``, written with a ``.`` or an
exponent); a key ``-23300 - i`` holds the array parameter ``i`` as ``<count>,v1,v2,...``
(``-23310=1,0.1`` is parameter 10, ``[0.1]``). Newer files may also write an array as
``i=v1,v2`` and a string as ``i=text``. :class:`LayerSpec` keys every array by its plain
index, so ``-23310=...`` is read back as ``params[10]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vsr_pipeline.errors import ModelError

MAGIC = 7767517
ARRAY_KEY_BASE = -23300  # array parameter i is written under key -23300 - i

Number = int | float
ParamValue = int | float | str | tuple[Number, ...]


class ParamKindError(TypeError):
    """A parameter holds a value of the wrong kind (an array where a number belongs, …)."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer line: its type, name, blob names and parameters."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, ParamValue] = field(default_factory=dict)

    def int(self, key: int, default: int) -> int:
        """Parameter ``key`` as an int (ncnn reads ints and floats interchangeably)."""
        value = self.params.get(key, default)
        if isinstance(value, (str, tuple)):
            raise ParamKindError(f"parameter {key} is not a number")
        return int(value)

    def pair(self, key: int, default: int) -> tuple[int, int]:
        """(width, height) of a 2-D parameter: ncnn keeps the height at ``key + 10``, defaulting to the width."""
        w = self.int(key, default)
        return w, self.int(key + 10, w)

    def pads(self, key: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) padding at ncnn's ids ``key``, ``key + 10``, ``key + 11``, ``key + 12``."""
        left = self.int(key, 0)
        top = self.int(key + 10, left)
        return left, top, self.int(key + 11, left), self.int(key + 12, top)

    def float(self, key: int, default: float) -> float:
        """Parameter ``key`` as a float."""
        value = self.params.get(key, default)
        if isinstance(value, (str, tuple)):
            raise ParamKindError(f"parameter {key} is not a number")
        return float(value)

    def array(self, key: int) -> tuple[Number, ...]:
        """Array parameter ``key``; empty when absent."""
        value = self.params.get(key, ())
        if not isinstance(value, tuple):
            raise ParamKindError(f"parameter {key} is not an array")
        return value


@dataclass(frozen=True)
class GraphSpec:
    """A whole ``.param`` file: its layers in file (= execution) order."""

    path: Path
    layers: tuple[LayerSpec, ...]


def _number(text: str) -> Number:
    """ncnn's rule: a value with ``.``, ``e`` or ``E`` is a float, anything else an int."""
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _value(key: int, text: str) -> tuple[int, ParamValue]:
    """Decode one ``key=value`` pair into (parameter index, value)."""
    if key <= ARRAY_KEY_BASE:
        items = text.split(",")
        count = int(items[0])
        if count != len(items) - 1:
            raise ValueError(f"array {key} declares {count} values but holds {len(items) - 1}")
        return ARRAY_KEY_BASE - key, tuple(_number(v) for v in items[1:])
    if "," in text:
        return key, tuple(_number(v) for v in text.split(","))
    try:
        return key, _number(text)
    except ValueError:
        return key, text


def _layer(tokens: list[str]) -> LayerSpec:
    """Build a :class:`LayerSpec` from the whitespace-split tokens of one layer line."""
    if len(tokens) < 4:
        raise ValueError("a layer line needs a type, a name and two blob counts")
    type_, name = tokens[0], tokens[1]
    n_bottom, n_top = int(tokens[2]), int(tokens[3])
    if n_bottom < 0 or n_top < 0 or len(tokens) < 4 + n_bottom + n_top:
        raise ValueError(f"layer '{name}' lists fewer blobs than its counts say")
    bottoms = tuple(tokens[4 : 4 + n_bottom])
    tops = tuple(tokens[4 + n_bottom : 4 + n_bottom + n_top])
    params: dict[int, ParamValue] = {}
    for pair in tokens[4 + n_bottom + n_top :]:
        key_text, sep, value_text = pair.partition("=")
        if not sep:
            raise ValueError(f"layer '{name}' has the parameter '{pair}' without '='")
        index, value = _value(int(key_text), value_text)
        params[index] = value
    return LayerSpec(type_, name, bottoms, tops, params)


def parse_param(path: Path) -> GraphSpec:
    """Read and parse the ``.param`` file at ``path``.

    Raises :class:`ModelError` (one sentence naming the file) when the file cannot be read,
    does not start with the magic number, or has a malformed line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"cannot read the ncnn graph '{path}': {err}.") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines or lines[0][1] != [str(MAGIC)]:
        found = " ".join(lines[0][1]) if lines else "nothing"
        raise ModelError(
            f"'{path}' is not an ncnn text graph: it starts with '{found[:40]}' instead of the magic number {MAGIC}."
        )
    try:
        if len(lines) < 2 or len(lines[1][1]) != 2:
            raise ValueError("the second line must be '<layer count> <blob count>'")
        layer_count = int(lines[1][1][0])
    except ValueError as err:
        raise ModelError(f"ncnn graph '{path}' is malformed at line 2: {err}.") from None
    layers = []
    for lineno, tokens in lines[2:]:
        try:
            layers.append(_layer(tokens))
        except ValueError as err:
            raise ModelError(f"ncnn graph '{path}' is malformed at line {lineno}: {err}.") from None
    if len(layers) != layer_count:
        raise ModelError(
            f"ncnn graph '{path}' declares {layer_count} layers but lists {len(layers)}; the file is malformed or cut short."
        )
    return GraphSpec(path, tuple(layers))
