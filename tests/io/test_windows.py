import torch

from vsr_pipeline.io.windows import windows


def _items(n):
    return [torch.full((1, 1, 1), float(i)) for i in range(n)]


def _ids(w):
    return [int(v) for v in w.frames.flatten().tolist()]


def test_replicate_edges():
    out = list(windows(_items(6), tensor=lambda t: t))
    assert [_ids(w) for w in out] == [
        [0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5], [2, 3, 4, 5, 5], [3, 4, 5, 5, 5]
    ]
    assert [int(w.centre.item()) for w in out] == list(range(6))


def test_reflect_edges():
    out = list(windows(_items(5), tensor=lambda t: t, edge="reflect"))
    assert _ids(out[0]) == [2, 1, 0, 1, 2]
    assert _ids(out[-1]) == [2, 3, 4, 3, 2]


def test_short_clips():
    assert [_ids(w) for w in windows(_items(1), tensor=lambda t: t)] == [[0] * 5]
    assert [_ids(w) for w in windows(_items(2), tensor=lambda t: t)] == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]


def test_scene_cut_is_an_edge():
    cut_at = 3
    out = list(windows(_items(7), tensor=lambda t: t, is_cut=lambda a, b: int(b.item()) == cut_at))
    assert _ids(out[2]) == [0, 1, 2, 2, 2]  # no frame of the next scene leaks in
    assert _ids(out[3]) == [3, 3, 3, 4, 5]
    assert [w.scene for w in out] == [0, 0, 0, 1, 1, 1, 1]


def test_streams_with_bounded_memory():
    alive = []

    def gen():
        for i in range(100):
            alive.append(i)
            yield torch.full((1, 1, 1), float(i))

    it = windows(gen(), tensor=lambda t: t)
    for k, w in enumerate(it):
        assert len(alive) <= k + 3  # never more than 2 frames of look-ahead
    assert k == 99


# -- issue 18: mutants of windows.py that the tests above let live -----------------------


def test_reflect_on_one_and_two_frame_scenes():
    assert [_ids(w) for w in windows(_items(1), tensor=lambda t: t, edge="reflect")] == [[0] * 5]
    assert [_ids(w) for w in windows(_items(2), tensor=lambda t: t, edge="reflect")] == [
        [0, 1, 0, 1, 0], [1, 0, 1, 0, 1]
    ]


def test_window_size_and_edge_are_checked():
    import pytest

    assert [_ids(w) for w in windows(_items(3), size=1, tensor=lambda t: t)] == [[0], [1], [2]]
    assert [_ids(w) for w in windows(_items(3), size=9, tensor=lambda t: t)][1] == [0, 0, 0, 0, 1, 2, 2, 2, 2]
    for bad in (0, -1, 4):
        with pytest.raises(ValueError, match=f"odd and positive, got {bad}"):
            list(windows(_items(3), size=bad, tensor=lambda t: t))
    with pytest.raises(ValueError, match="edge must be 'replicate' or 'reflect', got 'wrap'"):
        list(windows(_items(3), edge="wrap", tensor=lambda t: t))


def test_is_cut_gets_the_previous_item_and_scenes_count_up():
    seen = []

    def is_cut(prev, cur):
        seen.append((int(prev.item()), int(cur.item())))  # prev is a real item, never a placeholder
        return int(cur.item()) in (2, 4)

    out = list(windows(_items(6), tensor=lambda t: t, is_cut=is_cut))
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert [w.scene for w in out] == [0, 0, 1, 1, 2, 2]
    assert _ids(out[4]) == [4, 4, 4, 5, 5]
