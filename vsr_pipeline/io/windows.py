"""Five-frame windows around every frame, as a pure streaming iterator.

A window is (T, C, H, W) with the target frame at index T // 2. At the clip's edges, and
at scene cuts, missing neighbours are replicated from the nearest frame of the same
scene (``edge="replicate"``) or mirrored around the target (``edge="reflect"``). The
iterator holds at most T frames plus the frame after the current scene's end.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, Generic, Iterable, Iterator, TypeVar

if TYPE_CHECKING:  # the window constants are read by torch-free code (batch planning, the VapourSynth plugin)
    import torch

T = TypeVar("T")

WINDOW_FRAMES = 5  # frames per window everywhere in the stage: the target and two neighbours each side
RADIUS = WINDOW_FRAMES // 2  # neighbours on each side of a window's target


class Window(Generic[T]):
    """A window: the centre item (e.g. a :class:`~vsr_pipeline.io.reader.Frame`) and its stacked tensor."""

    __slots__ = ("centre", "frames", "scene")

    def __init__(self, centre: T, frames: torch.Tensor, scene: int) -> None:
        self.centre = centre  # the item the output belongs to
        self.frames = frames  # (T, C, H, W)
        self.scene = scene  # scene number, from 0


def window_indices(n: int, i: int, radius: int, edge: str) -> list[int]:
    """Indices (into a scene of n frames) of the window around frame i."""
    out = []
    for d in range(-radius, radius + 1):
        j = i + d
        if edge == "reflect" and n > 1:
            period = 2 * (n - 1)
            j = j % period
            j = period - j if j >= n else j
        out.append(min(max(j, 0), n - 1))
    return out


def windows(
    items: Iterable[T],
    *,
    size: int = WINDOW_FRAMES,
    edge: str = "replicate",
    tensor: Callable[[T], torch.Tensor] = lambda f: f.rgb,  # type: ignore[attr-defined]
    is_cut: Callable[[T, T], bool] | None = None,
) -> Iterator[Window[T]]:
    """Yield one :class:`Window` per input item, in order.

    ``tensor`` extracts the (C, H, W) tensor of an item; ``is_cut(prev, cur)`` returns True
    when ``cur`` starts a new scene (the window then treats the cut like a clip edge).
    """
    import torch

    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and positive, got {size}")
    if edge not in ("replicate", "reflect"):
        raise ValueError(f"edge must be 'replicate' or 'reflect', got {edge!r}")
    radius = size // 2
    buf: deque[T] = deque()  # frames of the current scene still needed
    first = 0  # scene-relative index of buf[0]
    done = 0  # scene-relative index of the next centre to emit
    scene = 0
    prev: T | None = None

    def emit(i: int, n_known: int, final: bool) -> Window[T]:
        # n_known: frames of the scene seen so far; when final, that is the scene's length
        n = n_known if final else max(n_known, i + radius + 1)
        idx = window_indices(n, i, radius, edge)
        frames = torch.stack([tensor(buf[j - first]) for j in idx])
        return Window(buf[i - first], frames, scene)

    for item in items:
        if prev is not None and is_cut is not None and is_cut(prev, item):
            n = first + len(buf)
            while done < n:
                yield emit(done, n, True)
                done += 1
            buf.clear()
            first = done = 0
            scene += 1
        buf.append(item)
        prev = item
        n = first + len(buf)
        while done + radius < n:  # enough look-ahead for frame `done`
            yield emit(done, n, False)
            done += 1
            while done - first > radius:  # drop frames no window needs any more
                buf.popleft()
                first += 1
    n = first + len(buf)
    while done < n:
        yield emit(done, n, True)
        done += 1
