"""Experiment statistics against independent computations (statsmodels and by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t
from statsmodels.stats.gof import chisquare
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, _tstat_generic

from omnicx.analytics.stats import Moments, compare, parse_counts, srm_p_value


def by_hand(na: int, ca: int, nb: int, cb: int) -> dict[str, float]:
    """Relative uplift, delta-method sd and Welch dof for two proportions, written out in full;
    the t tail comes from statsmodels."""
    pa, pb = ca / na, cb / nb
    va, vb = pa * (1 - pa), pb * (1 - pb)
    lift = pb / pa - 1
    var = vb / (pa * pa * nb) + va * pb * pb / (pa**4 * na)
    dof = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    _t, p = _tstat_generic(lift, 0, math.sqrt(var), dof, "two-sided")
    return {"lift": lift, "sd": math.sqrt(var), "dof": dof, "p": float(p)}


@pytest.mark.parametrize(
    ("na", "ca", "nb", "cb"),
    [
        (1000, 100, 1000, 130),  # equal groups
        (2000, 210, 500, 70),  # unequal groups
        (50_000, 1500, 48_700, 1490),  # large, tiny effect
        (30, 3, 90, 4),  # small samples
    ],
)
def test_conversion_uplift_matches_hand_computation(na: int, ca: int, nb: int, cb: int) -> None:
    result = compare(Moments.proportion(na, ca), Moments.proportion(nb, cb))
    expected = by_hand(na, ca, nb, cb)
    assert result.uplift == pytest.approx(expected["lift"], rel=1e-12)
    assert result.stddev == pytest.approx(expected["sd"], rel=1e-12)
    assert result.p_value == pytest.approx(expected["p"], rel=1e-9)
    half = t.ppf(0.975, expected["dof"]) * expected["sd"]
    assert result.ci == pytest.approx((expected["lift"] - half, expected["lift"] + half))
    assert result.chance_to_win == pytest.approx(
        0.5 * (1 + math.erf(expected["lift"] / expected["sd"] / math.sqrt(2)))
    )


def test_published_style_example_by_hand() -> None:
    # 10 % vs 13 %: uplift 30 %, var = .1131/(.01*1000) + .09*.0169/(.0001*1000) = .02652
    result = compare(Moments.proportion(1000, 100), Moments.proportion(1000, 130))
    assert result.uplift == pytest.approx(0.30)
    assert result.stddev == pytest.approx(math.sqrt(0.02652))
    assert result.p_value is not None and 0.06 < result.p_value < 0.07
    assert result.ci is not None and result.ci[0] < 0 < result.ci[1]


def test_revenue_per_customer_matches_statsmodels_welch() -> None:
    rng = np.random.default_rng(3)
    control = np.where(rng.random(800) < 0.1, rng.gamma(2, 30, 800), 0.0)
    treatment = np.where(rng.random(1300) < 0.12, rng.gamma(2, 33, 1300), 0.0)
    a = Moments.sample(800, float(control.sum()), float((control**2).sum()))
    b = Moments.sample(1300, float(treatment.sum()), float((treatment**2).sum()))
    da, db = DescrStatsW(control, ddof=1), DescrStatsW(treatment, ddof=1)
    assert a.mean == pytest.approx(da.mean)
    assert a.variance == pytest.approx(da.var)
    dof = CompareMeans(db, da).dof_satt()
    lift = db.mean / da.mean - 1
    sd = math.sqrt(db.var / (da.mean**2 * 1300) + da.var * db.mean**2 / (da.mean**4 * 800))
    _t, p = _tstat_generic(lift, 0, sd, dof, "two-sided")
    result = compare(a, b)
    assert result.uplift == pytest.approx(lift)
    assert result.p_value == pytest.approx(float(p), rel=1e-9)


def test_zero_conversions() -> None:
    none_anywhere = compare(Moments.proportion(500, 0), Moments.proportion(800, 0))
    assert none_anywhere.uplift is None and none_anywhere.p_value is None
    assert "zero" in (none_anywhere.note or "")
    control_zero = compare(Moments.proportion(500, 0), Moments.proportion(800, 9))
    assert control_zero.uplift is None and "undefined" in (control_zero.note or "")
    # Treatment without conversions: a -100 % uplift whose delta-method variance is 0, where
    # GrowthBook reports no interval; so do we.
    treatment_zero = compare(Moments.proportion(500, 20), Moments.proportion(800, 0))
    assert treatment_zero.uplift == -1.0
    assert treatment_zero.p_value is None and treatment_zero.ci is None


def test_sequential_interval_by_hand_and_wider_than_fixed() -> None:
    a, b = Moments.proportion(4000, 400), Moments.proportion(4100, 480)
    fixed = compare(a, b)
    seq = compare(a, b, sequential=True, tuning=5000)
    assert seq.uplift == fixed.uplift and seq.stddev == fixed.stddev
    n, alpha = 8100, 0.05
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 5000
    s2 = fixed.stddev**2 * n  # type: ignore[operator]
    half = math.sqrt(s2) * math.sqrt(
        2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )
    assert seq.ci == pytest.approx((seq.uplift - half, seq.uplift + half))  # type: ignore[operator]
    assert seq.ci[1] - seq.ci[0] > fixed.ci[1] - fixed.ci[0]  # type: ignore[index]
    st2 = seq.uplift**2 * n / fixed.stddev**2  # type: ignore[operator]
    evalue = math.exp(rho2 * st2 / (2 * (n * rho2 + 1))) / math.sqrt(n * rho2 + 1)
    assert seq.p_value == pytest.approx(min(1 / evalue, 1.0))
    assert seq.p_value > fixed.p_value  # type: ignore[operator]


def test_sample_ratio_mismatch_matches_statsmodels_chisquare() -> None:
    cases: list[tuple[list[int], list[float] | None]] = [
        ([5000, 5200], [1, 1]),
        ([1900, 8300], [0.2, 0.8]),
        ([10, 11], None),
    ]
    for observed, weights in cases:
        w = np.array(weights or [1, 1], dtype=float)
        _stat, p = chisquare(observed, w / w.sum() * sum(observed))
        assert srm_p_value(observed, weights) == pytest.approx(float(p))
    assert srm_p_value([5000, 5600]) < 0.001
    assert srm_p_value([0, 0]) == 1.0


def test_counts_parse_and_refuse_nonsense() -> None:
    assert parse_counts("1000/120") == (1000, 120)
    for bad in ("1000", "10/20", "a/b", "-1/0"):
        with pytest.raises(ValueError):
            parse_counts(bad)
