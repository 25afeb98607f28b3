"""The paper's reported numbers for the coordinate tasks, as data (sources: PAPER.md sections 3-5).

Each entry is what the paper (or its blog post) states for a task, split and model: a short text for the
table, and the value it implies where there is one. The paper reports the best model of a hyperparameter
sweep, trained for up to hours on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAPER", "PAPER_EFFECT", "PaperResult"]


@dataclass(frozen=True)
class PaperResult:
    """What the paper reports for one (task, split, model)."""

    text: str
    """The claim, shortened, for a table cell."""
    source: str
    """Where it comes from."""


PAPER: dict[tuple[str, str, str], PaperResult] = {
    ("classification", "uniform", "conv"): PaperResult(
        "test acc <= ~86% (best of 324 configs); 80% after ~4,000 s", "Sec. 3, Fig. 4-5"
    ),
    ("classification", "quadrant", "conv"): PaperResult("test acc ~0% (train up to 99.6%)", "Fig. 5"),
    ("classification", "uniform", "coordconv"): PaperResult("100% train and test, in 10-20 s", "Fig. 4-5"),
    ("classification", "quadrant", "coordconv"): PaperResult("100% train and test, in 10-20 s", "Fig. 4-5"),
    ("rendering", "uniform", "conv"): PaperResult("test IOU <= 0.83 (best of 648 configs, > 90 min)", "Sec. 4, blog"),
    ("rendering", "quadrant", "conv"): PaperResult("test IOU <= 0.36", "Sec. 4, blog, Fig. 6"),
    ("rendering", "uniform", "coordconv"): PaperResult('IOU ~1 ("many models perfect"), ~1 min', "Fig. 6"),
    ("rendering", "quadrant", "coordconv"): PaperResult('IOU ~1 ("many models perfect"), ~1 min', "Fig. 6"),
    ("regression", "uniform", "conv"): PaperResult("generalises (no number given)", "Sec. 3, reviews"),
    ("regression", "quadrant", "conv"): PaperResult("fails to generalise (no number given)", "Fig. 5"),
    ("regression", "uniform", "coordconv"): PaperResult("fits train and test perfectly", "Fig. 5"),
    ("regression", "quadrant", "coordconv"): PaperResult("fits train and test perfectly", "Fig. 5"),
}

#: The paper's effect of CoordConv on the test metric (CoordConv - conv, the metric's units: accuracy and IoU as
#: 0-1, error in pixels), read off the claims above, and the side of zero it lies on. ``None``: the paper states a
#: direction without a number. Where the paper gives conv's best (``<=``), the effect is the smallest it claims.
PAPER_EFFECT: dict[tuple[str, str], tuple[float | None, int]] = {
    ("classification", "uniform"): (1.0 - 0.86, 1),
    ("classification", "quadrant"): (1.0 - 0.0, 1),
    ("rendering", "uniform"): (1.0 - 0.83, 1),
    ("rendering", "quadrant"): (1.0 - 0.36, 1),
    ("regression", "uniform"): (None, -1),
    ("regression", "quadrant"): (None, -1),
}
