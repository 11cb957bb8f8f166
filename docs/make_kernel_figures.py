"""Draw the kernel pictures used by docs/degradations.md into docs/img/.

Run from the repository root:  .venv/bin/python docs/make_kernel_figures.py
Writes docs/img/kernels.png (one panel per kernel kind) and docs/img/kernels_x4.png
(a DIV2KRK-style ×2 kernel and the ×4 kernel composed from it).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from vsr_pipeline.degrade import (  # noqa: E402
    anisotropic_gaussian_kernel,
    compose_x4,
    disk_kernel,
    gaussian_kernel,
    parse_degradation,
    random_kernel,
)


def _panel(ax, k: torch.Tensor, title: str) -> None:
    h, w = k.shape
    ax.imshow(k.numpy(), cmap="magma", interpolation="nearest")
    ax.plot([w // 2], [h // 2], marker="+", color="cyan", markersize=8)  # the anchor pixel
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{h}×{w}", fontsize=8)


def make_figures(out_dir: Path) -> list[Path]:
    """Write the kernel figures into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = [
        (gaussian_kernel(2.0), "gauss:sigma=2.0"),
        (anisotropic_gaussian_kernel(4.0, 1.0, math.pi / 6), "aniso:l1=4.0,l2=1.0,\ntheta=0.5236"),
        (disk_kernel(2.0), "disk:radius=2.0"),
        (parse_degradation("gauss:sigma=2.0,down=stride", 4).kernel, "gauss:sigma=2.0,\ndown=stride (×4)"),
        (random_kernel(0), "random_kernel(seed=0)\n(DIV2KRK-style ×2)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.9))
    for ax, (k, title) in zip(axes, panels):
        _panel(ax, k, title)
    fig.tight_layout()
    p1 = out_dir / "kernels.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    k2 = random_kernel(0)
    fig, axes = plt.subplots(1, 2, figsize=(5.0, 2.9))
    _panel(axes[0], k2, "k2 = random_kernel(0)")
    _panel(axes[1], compose_x4(k2), "k4 = compose_x4(k2)")
    fig.tight_layout()
    p2 = out_dir / "kernels_x4.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    for path in make_figures(parser.parse_args().out):
        print(path)  # a script, not library code: the terminal is ours


if __name__ == "__main__":
    main()
