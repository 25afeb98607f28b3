import math

import pytest
from scipy import stats as scipy_stats

from coordconv.repro.report.stats import (
    compare_groups,
    minimum_detectable_effect,
    t_quantile,
    welch_interval,
)


def test_t_quantiles_match_the_printed_tables():
    # Student's t table (two-sided 95%: 12.706, 4.303, 2.776, 2.228; one-sided 80%: 0.941, 0.879), normal 1.960
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)
    assert t_quantile(0.8, 4) == pytest.approx(0.941, abs=5e-4)
    assert t_quantile(0.8, 10) == pytest.approx(0.879, abs=5e-4)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.960, abs=5e-4)
    with pytest.raises(ValueError, match="probability must be in"):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError, match="degrees of freedom must be positive, got 0"):
        t_quantile(0.9, 0)


def test_welch_interval_matches_scipy_and_a_hand_computation():
    a, b = [0.52, 0.55, 0.49, 0.51], [0.47, 0.50, 0.44, 0.41, 0.45]
    diff, low, high = welch_interval(a, b)
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert diff == pytest.approx(0.5175 - 0.454)
    # by hand: equal variances 1 and n = 3 each give se = sqrt(2/3), df = 4
    diff, low, high = welch_interval([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    half = 2.7764451 * math.sqrt(2 / 3)
    assert (diff, low, high) == pytest.approx((1.0, 1.0 - half, 1.0 + half), rel=1e-6)
    with pytest.raises(ValueError, match="two or more values to have a spread, got 1 and 3"):
        welch_interval([1.0], [1.0, 2.0, 3.0])


def test_minimum_detectable_effect_is_the_textbook_formula():
    # n = 3 a side, variance 1: (t(.975, 4) + t(.8, 4)) * sqrt(2/3) = (2.7764 + 0.9410) * 0.8165
    assert minimum_detectable_effect([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) == pytest.approx(3.0353, abs=1e-3)
    # large groups tend to the normal's 2.80 standard errors
    a = [float(i % 7) for i in range(4000)]
    b = [float(i % 7) + 0.5 for i in range(4000)]
    se = math.sqrt(2 * scipy_stats.tvar(a) / 4000)
    assert minimum_detectable_effect(a, b) == pytest.approx(2.8016 * se, rel=1e-3)
    # and a true effect of that size is found about 80% of the time (the noncentral t's power)
    df = 4.0
    se = math.sqrt(2 / 3)
    effect = minimum_detectable_effect([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    power = scipy_stats.nct.sf(t_quantile(0.975, df), df, effect / se)
    assert 0.75 < power < 0.85


def test_verdicts_by_what_the_interval_shows():
    conv = [0.50, 0.52, 0.48]
    # the paper's +0.10: an interval around +0.10 reproduces it, one beyond it too
    assert compare_groups([0.60, 0.62, 0.58], conv, 0.10).verdict == "reproduced"
    assert compare_groups([0.90, 0.92, 0.88], conv, 0.10).verdict == "reproduced"
    # short of it, on its side: contradicted, and said so
    short = compare_groups([0.53, 0.54, 0.535], [0.50, 0.505, 0.51], 0.10)
    assert short.verdict == "contradicted" and "paper's side, smaller" in short.words()
    # around zero and tight: excludes +0.10, so contradicted ("no gain" is allowed here)
    tight = compare_groups([0.501, 0.519, 0.48], conv, 0.10)
    assert tight.verdict == "contradicted" and tight.words() == "contradicted: the interval excludes the paper's effect"
    # on the other side
    worse = compare_groups([0.40, 0.41, 0.42], conv, 0.10)
    assert worse.verdict == "contradicted" and "opposite to the paper's" in worse.words()
    # wide: holds 0 and +0.10, so nothing is detected, and the words say how large an effect could be
    wide = compare_groups([0.3, 0.7, 0.5], [0.2, 0.8, 0.5], 0.10)
    assert wide.verdict == "no detectable difference"
    assert (
        wide.words(2) == f"no detectable difference; this test could detect effects larger than {wide.detectable:.2f}"
    )
    assert wide.detectable > 0.10
    # a paper that has the first group lower (an error in pixels, say)
    assert compare_groups([0.1, 0.2, 0.15], [2.0, 2.2, 2.1], -1.0).verdict == "reproduced"
    assert compare_groups([2.0, 2.2, 2.1], [0.1, 0.2, 0.15], -1.0).verdict == "contradicted"


def test_direction_only_verdicts_and_the_refusals():
    assert compare_groups([2.0, 2.1, 2.2], [1.0, 1.1, 1.2], None).verdict == "reproduced"
    assert compare_groups([2.0, 2.1, 2.2], [1.0, 1.1, 1.2], None, side=-1).verdict == "contradicted"
    assert compare_groups([1.0, 2.0, 3.0], [1.1, 2.1, 3.1], None).verdict == "no detectable difference"
    assert compare_groups([1.0], [1.0, 2.0], 0.1) is None  # one run: no spread to measure
    same = compare_groups([1.0, 1.0], [0.0, 0.0], 0.5)  # no spread at all: the interval is the point
    assert same is not None and same.low == same.high == 1.0 and same.verdict == "reproduced"
    flat = compare_groups([1.0, 1.0], [1.0, 1.0], None)
    assert flat.verdict == "no detectable difference" and flat.words() == (
        "no difference (no spread: every seed of both gives the same value)"
    )
    assert compare_groups([1.0, 1.5], [1.0, 1.5], None).interval(2) == "+0.00 [-1.52, +1.52]"  # se sqrt(1/8), df 2
    with pytest.raises(ValueError, match="side must be"):
        compare_groups([1.0, 2.0], [1.0, 2.0], None, side=0)
    with pytest.raises(ValueError, match="must be nonzero"):
        compare_groups([1.0, 2.0], [1.0, 2.0], 0.0)
