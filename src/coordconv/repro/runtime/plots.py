"""Figure helpers shared by the reports: a headless pyplot, atomic saving, image grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from coordconv.repro.runtime.rundir import atomic_path

__all__ = ["pyplot", "save_figure", "save_image_grid", "tile"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, *, dpi: int = 90) -> None:
    """Save ``fig`` to ``path`` atomically (a temporary file, then a rename) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        pyplot().close(fig)


def tile(images: Tensor, nrow: int, *, pad: int = 2) -> Tensor:
    """``(N, 3, H, W)`` images (uint8, or float in ``[0, 1]``) tiled into one ``(height, width, 3)`` uint8 array.

    ``nrow`` images per row, separated by ``pad`` grey pixels.
    """
    import torch

    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    n, _, h, w = images.shape
    rows = -(-n // nrow)
    canvas = torch.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 128, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = images[i].permute(1, 2, 0)
    return canvas


def save_image_grid(images: Tensor, path: Path, *, nrow: int = 8) -> None:
    """Write ``images`` as one PNG grid, atomically (see :func:`tile`)."""
    plt = pyplot()
    with atomic_path(path) as tmp:
        plt.imsave(tmp, tile(images, nrow).numpy())
