"""Figure helpers shared by the reports: a headless pyplot, atomic saving, captions, time axes, image grids."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from coordconv.repro.runtime.files import atomic_path

__all__ = ["caption", "plot_series", "pyplot", "save_figure", "save_image_grid", "time_scale"]

#: how many times longer one model's runs may be than another's before a time axis turns logarithmic
LOG_TIME_RATIO = 10.0


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


def time_scale(spans: Iterable[float], ratio: float = LOG_TIME_RATIO) -> str:
    """``"log"`` when the longest of ``spans`` is over ``ratio`` times the shortest, else ``"linear"``.

    ``spans``: e.g. each model's typical run length. On a linear axis the short runs would be squashed against zero.
    """
    positive = [s for s in spans if s > 0]
    return "log" if positive and max(positive) > ratio * min(positive) else "linear"


def plot_series(ax: Any, xs: Sequence[float], ys: Sequence[float], **kwargs: Any) -> Any:
    """``ax.plot(xs, ys, **kwargs)``, with a marker when there is one point only (a lone point draws no line)."""
    if len(xs) == 1 and kwargs.get("marker") is None:
        kwargs = {**kwargs, "marker": "o", "markersize": 4}
    return ax.plot(xs, ys, **kwargs)


def caption(fig: Any, text: str, *, handles: Sequence[Any] = (), ncol: int = 0, fontsize: float = 8) -> None:
    """Lay ``fig`` out with ``text`` (wrapped to the figure's width) under it, and a legend of ``handles`` above it.

    The caption (and legend) explain inside the image what its marks mean, so the PNG reads alone.
    """
    width_in, height_in = fig.get_size_inches()
    lines = textwrap.wrap(text, width=int(width_in * 72 / (fontsize * 0.55)))  # about 0.55 em per character
    line_in = fontsize * 1.3 / 72
    margin_in = 0.08
    text_in = len(lines) * line_in
    fig.text(0.5, margin_in / height_in, "\n".join(lines), ha="center", va="bottom", fontsize=fontsize)
    legend_in = 0.0
    if handles:
        if not ncol:  # as many entries per row as fit the figure's width (one task's figure is narrow)
            label_in = max(len(str(h.get_label())) for h in handles) * fontsize * 0.55 / 72
            ncol = max(1, min(len(handles), int(width_in // (label_in + 0.6))))
        rows = -(-len(handles) // ncol)
        legend_in = rows * fontsize * 1.9 / 72 + 0.1
        fig.legend(
            handles=list(handles), loc="lower center", ncol=ncol, fontsize=fontsize, frameon=False,
            bbox_to_anchor=(0.5, (margin_in + text_in) / height_in),
        )  # fmt: skip
    bottom = (2 * margin_in + text_in + legend_in) / height_in
    fig.tight_layout(rect=(0, min(0.6, bottom), 1, 1))


def save_image_grid(images: Tensor, path: Path, *, nrow: int = 8, pad: int = 2) -> None:
    """Write ``(N, 3, H, W)`` images (uint8, or float in ``[0, 1]``) as one PNG grid, atomically.

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
    with atomic_path(path) as tmp:
        pyplot().imsave(tmp, canvas.numpy())
