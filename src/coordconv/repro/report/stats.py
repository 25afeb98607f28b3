"""Verdicts worded by what a test can detect: Welch's interval, the minimum detectable effect, and the verdict.

Every report that compares conv and CoordConv says one of three things (issue 26, section 5):

* **reproduced**: the 95% interval of the difference lies on the paper's side of zero and is consistent with the
  paper's effect (it reaches the paper's effect, or lies beyond it: a larger gain than the paper's);
* **contradicted**: the interval excludes the paper's effect (it lies short of it, on either side of zero);
* **no detectable difference; this test could detect effects larger than X**: the interval holds zero and the
  paper's effect both, where X is the minimum detectable effect at 80% power.

"No gain" is said only when the interval excludes the paper's effect. When the paper gives a direction but no
number (``paper=None``), only the direction can be tested: an interval on the paper's side reproduces the claim,
one on the other side contradicts it, and one that holds zero detects no difference.

The interval: the difference of the means ``mean(a) - mean(b)`` ± ``t(0.975, df) * se`` with Welch's standard error
``se = sqrt(var_a / n_a + var_b / n_b)`` and the Welch-Satterthwaite degrees of freedom ``df``. The minimum
detectable effect at 80% power: ``(t(0.975, df) + t(0.80, df)) * se``, the textbook formula for a two-sided test at
5% (Bloom, 1995), with the measured standard error.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = [
    "CONFIDENCE",
    "POWER",
    "Comparison",
    "compare_groups",
    "minimum_detectable_effect",
    "t_quantile",
    "welch_interval",
]

#: the confidence level of the intervals
CONFIDENCE = 0.95
#: the power at which the minimum detectable effect is computed
POWER = 0.80


def t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (scipy); the normal's for inf.

    Raises:
        ValueError: ``probability`` not in (0, 1) or ``df`` not positive.
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    from scipy import stats  # type: ignore[import-untyped,unused-ignore]

    if math.isinf(df):
        return float(stats.norm.ppf(probability))
    return float(stats.t.ppf(probability, df))


def _moments(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """The difference of the means, Welch's standard error and the Welch-Satterthwaite degrees of freedom.

    Without spread in either group the standard error is 0 and the degrees of freedom are ``n_a + n_b - 2``.
    """
    if min(len(a), len(b)) < 2:
        raise ValueError(f"each group needs two or more values to have a spread, got {len(a)} and {len(b)}")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    # Welch-Satterthwaite; without spread there is nothing to weigh, and the pooled count stands in
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se else float(len(a) + len(b) - 2)
    return statistics.fmean(a) - statistics.fmean(b), se, df


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """``(difference, low, high)``: ``mean(a) - mean(b)`` and its two-sided Welch interval at :data:`CONFIDENCE`.

    Raises:
        ValueError: a group has fewer than two values.
    """
    diff, se, df = _moments(a, b)
    half = t_quantile(0.5 + CONFIDENCE / 2, df) * se
    return diff, diff - half, diff + half


def minimum_detectable_effect(a: list[float], b: list[float]) -> float:
    """The smallest true difference a two-sided Welch test at ``1 - CONFIDENCE`` finds with :data:`POWER`.

    ``(t(1 - alpha/2, df) + t(power, df)) * se``, with the groups' measured standard error and degrees of freedom.

    Raises:
        ValueError: a group has fewer than two values.
    """
    _, se, df = _moments(a, b)
    return (t_quantile(0.5 + CONFIDENCE / 2, df) + t_quantile(POWER, df)) * se


@dataclass(frozen=True)
class Comparison:
    """One model's values against another's, beside the paper's effect, with the verdict of section 5."""

    difference: float
    """``mean(a) - mean(b)``."""
    low: float
    """The 95% interval's lower end."""
    high: float
    """The 95% interval's upper end."""
    detectable: float
    """The minimum detectable effect at 80% power (a magnitude)."""
    paper: float | None
    """The paper's effect in the same units (``None``: the paper gives a direction only)."""
    side: int
    """The paper's side of zero: +1 (``a`` above ``b``) or -1 (``a`` below ``b``)."""
    verdict: str
    """``reproduced``, ``contradicted`` or ``no detectable difference``."""

    def interval(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """``+0.012 [-0.004, +0.028]``: the difference and its interval, scaled, with ``unit`` after the interval."""
        d, lo, hi = (v * scale for v in (self.difference, self.low, self.high))
        return f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]{unit}"

    def words(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """The verdict in the words of section 5: what was detected, or the smallest effect the test could detect."""
        if self.verdict == "no detectable difference" and self.detectable == 0:
            return "no difference (no spread: every seed of both gives the same value)"
        if self.verdict == "no detectable difference":
            return (
                f"no detectable difference; this test could detect effects larger than "
                f"{self.detectable * scale:.{digits}f}{unit}"
            )
        if self.verdict == "reproduced":
            return "reproduced"
        near, far = (self.low, self.high) if self.side > 0 else (-self.high, -self.low)
        if far < 0:
            return "contradicted: a difference opposite to the paper's"
        if near > 0:
            return "contradicted: a difference on the paper's side, smaller than the paper's"
        return "contradicted: the interval excludes the paper's effect"

    def said(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """A difference the paper makes no claim about: higher, lower, or what the test could have detected."""
        if self.verdict == "no detectable difference":
            return self.words(digits, scale, unit)
        return "higher" if self.difference > 0 else "lower"


def compare_groups(a: list[float], b: list[float], paper: float | None, *, side: int = 1) -> Comparison | None:
    """``a`` (usually CoordConv) against ``b`` (usually conv) beside the paper's effect ``paper`` (``a - b``).

    ``side``: the paper's side of zero when ``paper`` is ``None`` (+1: the paper has ``a`` above ``b``); with a
    number, its sign decides. ``None`` when a group has fewer than two values (one run has no spread to measure).

    Raises:
        ValueError: ``side`` is not +1 or -1, or ``paper`` is 0 (a claim of no difference has no side).
    """
    if side not in (1, -1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    if paper is not None:
        if paper == 0:
            raise ValueError("the paper's effect must be nonzero (a claim of no difference has no side to test)")
        side = 1 if paper > 0 else -1
    if min(len(a), len(b)) < 2:
        return None
    diff, low, high = welch_interval(a, b)
    detectable = minimum_detectable_effect(a, b)
    near, far = (low, high) if side > 0 else (-high, -low)  # the interval, turned so that the paper's side is up
    if paper is None:
        verdict = "reproduced" if near > 0 else "contradicted" if far < 0 else "no detectable difference"
    elif far < abs(paper):
        verdict = "contradicted"  # the whole interval lies short of the paper's effect
    elif near > 0:
        verdict = "reproduced"  # on the paper's side, and reaching the paper's effect (or beyond it)
    else:
        verdict = "no detectable difference"  # zero and the paper's effect both inside
    return Comparison(diff, low, high, detectable, paper, side, verdict)
