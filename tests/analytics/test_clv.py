"""BG/NBD and Gamma-Gamma reproduce the published CDNOW estimates and recover known parameters."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from omnicx.analytics import clv
from tests.analytics.cdnow import CALIBRATION_END, transactions


@pytest.fixture(scope="module")
def cdnow() -> clv.Summary:
    return clv.summarise(transactions(), calibration_end=CALIBRATION_END, period="week")


def test_cdnow_summary_counts_repeat_purchase_days(cdnow: clv.Summary) -> None:
    assert len(cdnow.customers) == 2357
    assert int(cdnow.x.sum()) == 2457
    assert int((cdnow.x > 0).sum()) == 946
    first = cdnow.customers.index("0001")  # the paper's example customer
    assert (cdnow.x[first], round(cdnow.t_x[first], 2), round(cdnow.T[first], 2)) == (
        2,
        30.43,
        38.86,
    )


def test_bg_nbd_reproduces_fader_hardie_lee_2005(cdnow: clv.Summary) -> None:
    fit = clv.fit_bg_nbd(cdnow.x, cdnow.t_x, cdnow.T)
    # Published: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4
    assert (round(fit.r, 3), round(fit.alpha, 3), round(fit.a, 3), round(fit.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert round(fit.log_likelihood, 1) == -9582.4


def test_conditional_expectation_for_the_papers_example_customer(cdnow: clv.Summary) -> None:
    fit = clv.fit_bg_nbd(cdnow.x, cdnow.t_x, cdnow.T)
    expected = clv.expected_purchases(fit, 39, [2], [30.43], [38.86])
    assert round(float(expected[0]), 3) == 1.226


def test_gamma_gamma_reproduces_fader_hardie_note(cdnow: clv.Summary) -> None:
    fit = clv.fit_gamma_gamma(cdnow.x, cdnow.m)
    assert (round(fit.p, 2), round(fit.q, 2), round(fit.gamma, 2)) == (6.25, 3.74, 15.44)
    # The population mean spend per transaction p*gamma/(q-1), and shrinkage of a customer's
    # own mean towards it: a customer with 2 repeat purchases averaging $50.
    spend = clv.expected_spend(fit, [0, 2], [0, 50.0])
    assert spend[0] == pytest.approx(fit.p * fit.gamma / (fit.q - 1))
    assert spend[0] < spend[1] < 50.0


def test_p_alive_is_one_without_repeats_and_falls_with_silence(cdnow: clv.Summary) -> None:
    fit = clv.fit_bg_nbd(cdnow.x, cdnow.t_x, cdnow.T)
    alive = clv.p_alive(fit, [0, 5, 5], [0, 38, 10], [38.86, 38.86, 38.86])
    assert alive[0] == 1.0
    assert 0 < alive[2] < alive[1] < 1


def simulate_bg_nbd(
    rng: np.random.Generator, n: int, r: float, alpha: float, a: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers acquired at time 0 and observed for T weeks (as the model describes)."""
    T = rng.uniform(20, 80, n)
    rate = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    now, alive = np.zeros(n), np.ones(n, dtype=bool)
    while alive.any():
        now = now + rng.exponential(1 / np.maximum(rate, 1e-12))
        bought = alive & (now <= T)
        x[bought] += 1
        t_x[bought] = now[bought]
        alive = bought & (rng.random(n) >= drop)
    return x, t_x, T


def test_bg_nbd_recovers_simulated_parameters() -> None:
    truth = {"r": 0.6, "alpha": 6.0, "a": 0.9, "b": 3.5}
    x, t_x, T = simulate_bg_nbd(np.random.default_rng(7), 40_000, **truth)
    fit = clv.fit_bg_nbd(x, t_x, T)
    for name, value in truth.items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.15), name
    at_truth = clv.bg_nbd_log_likelihood(0.6, 6.0, 0.9, 3.5, x, t_x, T).sum()
    assert fit.log_likelihood >= at_truth


def test_gamma_gamma_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(11)
    p, q, gamma = 4.0, 5.0, 60.0
    x = rng.integers(1, 8, 30_000).astype(float)
    nu = rng.gamma(q, 1 / gamma, x.size)
    m = rng.gamma(p * x, 1 / nu) / x
    fit = clv.fit_gamma_gamma(x, m)
    assert fit.p == pytest.approx(p, rel=0.1)
    assert fit.q == pytest.approx(q, rel=0.1)
    assert fit.gamma == pytest.approx(gamma, rel=0.1)


def test_predicted_clv_discounts_and_grows_with_horizon(cdnow: clv.Summary) -> None:
    bg = clv.fit_bg_nbd(cdnow.x, cdnow.t_x, cdnow.T)
    spend = np.full(3, 40.0)
    x, t_x, T = [0, 2, 6], [0, 30.43, 38], [38.86, 38.86, 38.86]
    kw = {"period_days": 7.0, "margin": 1.0}
    year = clv.predicted_clv(bg, spend, x, t_x, T, months=12, annual_discount=0.0, **kw)
    undiscounted = 40.0 * clv.expected_purchases(bg, 365.25 / 7, x, t_x, T)
    assert year == pytest.approx(undiscounted)
    discounted = clv.predicted_clv(bg, spend, x, t_x, T, months=12, annual_discount=0.1, **kw)
    assert np.all(discounted < year)
    longer = clv.predicted_clv(bg, spend, x, t_x, T, months=24, annual_discount=0.1, **kw)
    assert np.all(longer > discounted)
    assert discounted[0] < discounted[2]  # the frequent, recent buyer is worth most


def test_unidentifiable_data_is_refused() -> None:
    with pytest.raises(clv.FitError, match="repeat purchase"):
        clv.fit_bg_nbd([0, 0], [0, 0], [10, 12])
    with pytest.raises(clv.FitError, match="t_x <= T"):
        clv.fit_bg_nbd([1, 2], [5, 20], [10, 12])
    with pytest.raises(clv.FitError, match="Gamma-Gamma"):
        clv.fit_gamma_gamma([0, 1], [0, 10.0])


def test_same_day_purchases_are_one_transaction() -> None:
    day = date(2024, 1, 1)
    summary = clv.summarise(
        [("c", day, 10.0), ("c", day, 5.0), ("c", date(2024, 1, 8), 20.0)],
        calibration_end=date(2024, 1, 15),
        period="day",
    )
    assert (summary.x[0], summary.t_x[0], summary.T[0], summary.m[0]) == (1, 7, 14, 20.0)
