import numpy as np
import torch

from clips import make_clip
from vsr_pipeline.io.scenes import SceneConfig, SceneDetector, detect_scenes
from vsr_pipeline.io.windows import windows


def _frames(n, cut):
    out = []
    for i in range(n):
        base = 0.15 if i < cut else 0.85
        f = torch.full((3, 36, 64), base)
        f[0, :, : 8 + i] = 0.5  # slow motion inside a scene
        out.append(f)
    return out


def test_detects_a_hard_cut():
    frames = _frames(30, 17)
    det = SceneDetector(SceneConfig(threshold=27, min_scene_len=3))
    cuts = [i for i in range(1, 30) if det(frames[i - 1], frames[i])]
    assert cuts == [17]


def test_off_when_threshold_zero():
    frames = _frames(10, 5)
    det = SceneDetector(SceneConfig(threshold=0))
    assert not any(det(frames[i - 1], frames[i]) for i in range(1, 10))


def test_windows_respect_detected_cuts():
    frames = _frames(24, 12)
    det = SceneDetector(SceneConfig(threshold=27, min_scene_len=3))
    wins = list(windows(frames, tensor=lambda t: t, is_cut=det))
    assert [w.scene for w in wins] == [0] * 12 + [1] * 12
    assert all(float(w.frames.mean()) > 0.5 for w in wins[12:])  # no dark frame leaks in


def test_detect_scenes_on_a_file(tmp_path):
    import av

    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            img = np.full((48, 64, 3), 30 if i < 15 else 220, np.uint8)
            img[:, : i + 4] = 120
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert detect_scenes(path, SceneConfig(min_scene_len=3)) == [0, 15]
    clip = make_clip(tmp_path / "smooth.mp4", n=20)
    assert detect_scenes(clip.path) == [0]
