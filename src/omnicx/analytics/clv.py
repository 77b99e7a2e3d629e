"""Customer lifetime value: the BG/NBD and Gamma-Gamma models, fitted by maximum likelihood.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way") models how often a
customer buys while alive and when they silently drop out; Gamma-Gamma (Fader, Hardie & Lee 2005,
"RFM and CLV"; Fader & Hardie's note "The Gamma-Gamma model of monetary value") models how much
they spend per transaction. Each customer is summarised as

- ``x``: repeat transactions (purchase *days* after the first, as the paper counts them),
- ``t_x``: time from the first to the last purchase, ``T``: from the first purchase to the end of
  the observation period (both in periods: weeks unless told otherwise),
- ``m``: mean value of the repeat transactions (only used when ``x > 0``).

Fitting maximises the papers' log-likelihoods with L-BFGS-B and analytic gradients, on the
logarithms of the parameters (so they stay positive), over the distinct summaries weighted by how
many customers share them. Predictive CLV sums, month by month over the horizon, the expected
purchases in the month times the expected spend, discounted at the annual rate compounded monthly
(as the lifetimes library and Fader-Hardie's spreadsheets do), times the margin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

Array = npt.NDArray[np.float64]
DAYS_PER_MONTH = 365.25 / 12
PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": DAYS_PER_MONTH}


class FitError(ValueError):
    """The data cannot identify the model (e.g. nobody bought twice)."""


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Summary:
    """One row per customer (arrays of equal length); times in ``period`` units."""

    customers: list[str]
    x: Array
    t_x: Array
    T: Array
    m: Array  # mean repeat transaction value; 0 where x == 0
    period: str


def _f(values: Any) -> Array:
    return np.asarray(values, dtype=np.float64)


def bg_nbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: Array, t_x: Array, T: Array
) -> Array:
    """Each customer's log-likelihood (paper, eq. 6)."""
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    xr = x[repeat]
    a4[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    result: Array = a1 + a2 + np.logaddexp(a3, a4)
    return result


def _four(values: Array) -> tuple[float, float, float, float]:
    r, alpha, a, b = (float(v) for v in values)
    return r, alpha, a, b


def _compress(*columns: Array) -> tuple[list[Array], Array]:
    """Distinct rows and how many times each occurs: the likelihood only needs those."""
    stacked = np.column_stack(columns)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return [unique[:, i] for i in range(unique.shape[1])], counts.astype(np.float64)


def _maximise(nll: Any, start: Array) -> Array:
    """Minimise ``nll(log_params) -> (value, gradient)`` with L-BFGS-B."""
    result = minimize(
        nll,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise FitError("the likelihood did not converge")
    out: Array = result.x
    return out


def fit_bg_nbd(x: Any, t_x: Any, T: Any) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the customers' (x, t_x, T)."""
    x, t_x, T = _f(x), _f(t_x), _f(T)
    _check_summary(x, t_x, T)
    if not np.any(x > 0):
        raise FitError("no customer made a repeat purchase: BG/NBD cannot be fitted")
    (ux, ut, uT), weights = _compress(x, t_x, T)
    total = weights.sum()
    scale = float(np.mean(T)) or 1.0  # start alpha near the time scale of the data

    @np.errstate(all="ignore")  # trial points far off make inf/nan, which L-BFGS-B steps back from
    def nll(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        ll, grad = _bg_nbd_ll_and_grad(*_four(params), ux, ut, uT)
        value = -float(np.dot(weights, ll)) / total
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(4)
        return value, -(grad @ weights) * params / total

    best = np.exp(_maximise(nll, np.log(np.array([1.0, scale, 1.0, 1.0]))))
    r, alpha, a, b = _four(best)
    ll = float(np.dot(weights, bg_nbd_log_likelihood(r, alpha, a, b, ux, ut, uT)))
    return BgNbd(r, alpha, a, b, log_likelihood=ll)


def _bg_nbd_ll_and_grad(
    r: float, alpha: float, a: float, b: float, x: Array, t_x: Array, T: Array
) -> tuple[Array, Array]:
    """Log-likelihoods and their gradient in (r, alpha, a, b), one column per customer."""
    ll = bg_nbd_log_likelihood(r, alpha, a, b, x, t_x, T)
    a3 = -(r + x) * np.log(alpha + T)
    w3 = np.exp(a3 - ll + _a12(r, alpha, a, b, x))  # share of the "still alive" term
    w4 = 1.0 - w3
    rep = x > 0
    bx1 = np.where(rep, b + x - 1, 1.0)
    d1_r = digamma(r + x) - digamma(r) + np.log(alpha)
    d2_a = digamma(a + b) - digamma(a + b + x)
    d2_b = d2_a + digamma(b + x) - digamma(b)
    log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
    grad = np.empty((4, x.size))
    grad[0] = d1_r - w3 * log_at - w4 * log_atx
    grad[1] = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    grad[2] = d2_a + w4 / a
    grad[3] = d2_b - w4 / bx1
    return ll, grad


def _a12(r: float, alpha: float, a: float, b: float, x: Array) -> Array:
    result: Array = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x)
        - gammaln(b)
        - gammaln(a + b + x)
    )
    return result


def expected_purchases(params: BgNbd, t: float, x: Any, t_x: Any, T: Any) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (paper, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = _f(x), _f(t_x), _f(T)
    if t <= 0:
        return np.zeros_like(x)
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    result: Array = first / (1 + _odds_dead(params, x, t_x, T))
    return result


def expected_purchases_new(params: BgNbd, t: Any) -> Array:
    """E[X(t)] for a customer just acquired (paper, eq. 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = _f(t)
    hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
    result: Array = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)
    return result


def _odds_dead(params: BgNbd, x: Array, t_x: Array, T: Array) -> Array:
    """The δ(x>0)·a/(b+x−1)·((α+T)/(α+t_x))^(r+x) term of eqs. 10 and 13."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    odds = np.zeros_like(x)
    rep = x > 0
    xr = x[rep]
    log_odds = np.log(a / (b + xr - 1)) + (r + xr) * np.log((alpha + T[rep]) / (alpha + t_x[rep]))
    odds[rep] = np.exp(np.minimum(log_odds, 700.0))
    return odds


def p_alive(params: BgNbd, x: Any, t_x: Any, T: Any) -> Array:
    """P(still a customer | x, t_x, T) (Fader, Hardie & Lee's note on P(alive), eq. 13)."""
    x, t_x, T = _f(x), _f(t_x), _f(T)
    result: Array = 1.0 / (1.0 + _odds_dead(params, x, t_x, T))
    return result


def gamma_gamma_log_likelihood(p: float, q: float, gamma: float, x: Array, m: Array) -> Array:
    """Each repeat customer's log-likelihood of their mean spend ``m`` over ``x`` purchases."""
    px = p * x
    result: Array = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * m)
    )
    return result


def fit_gamma_gamma(x: Any, m: Any) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers (x > 0, m > 0)."""
    x, m = _f(x), _f(m)
    keep = (x > 0) & (m > 0)
    if keep.sum() < 2:
        raise FitError("fewer than two repeat customers with spend: Gamma-Gamma cannot be fitted")
    (ux, um), weights = _compress(x[keep], m[keep])
    total = weights.sum()
    scale = float(np.mean(m[keep]))

    @np.errstate(all="ignore")
    def nll(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        p, q, gamma = (float(v) for v in params)
        ll, grad = _gamma_gamma_ll_and_grad(p, q, gamma, ux, um)
        value = -float(np.dot(weights, ll)) / total
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(3)
        return value, -(grad @ weights) * params / total

    best = np.exp(_maximise(nll, np.log(np.array([1.0, 1.0, scale]))))
    p, q, gamma = (float(v) for v in best)
    ll = float(np.dot(weights, gamma_gamma_log_likelihood(p, q, gamma, ux, um)))
    return GammaGamma(p, q, gamma, log_likelihood=ll)


def _gamma_gamma_ll_and_grad(
    p: float, q: float, gamma: float, x: Array, m: Array
) -> tuple[Array, Array]:
    ll = gamma_gamma_log_likelihood(p, q, gamma, x, m)
    px = p * x
    log_gxm = np.log(gamma + x * m)
    grad = np.empty((3, x.size))
    grad[0] = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_gxm)
    grad[1] = digamma(px + q) - digamma(q) + np.log(gamma) - log_gxm
    grad[2] = q / gamma - (px + q) / (gamma + x * m)
    return ll, grad


def expected_spend(params: GammaGamma, x: Any, m: Any) -> Array:
    """E[M | x, m]: the customer's expected mean transaction value (note, eq. 5).

    With no repeat purchase it is the population mean p·γ/(q−1). Needs q > 1."""
    if params.q <= 1:
        raise FitError("q <= 1: the fitted spend distribution has no finite mean")
    x, m = _f(x), _f(m)
    p, q, gamma = params.p, params.q, params.gamma
    result: Array = p * (gamma + x * m) / (p * x + q - 1)
    return result


def predicted_clv(
    bg: BgNbd,
    spend: Array,
    x: Any,
    t_x: Any,
    T: Any,
    *,
    months: int,
    annual_discount: float,
    period_days: float,
    margin: float = 1.0,
) -> Array:
    """Discounted expected value of the next ``months`` months, per customer."""
    x, t_x, T = _f(x), _f(t_x), _f(T)
    monthly = (1 + annual_discount) ** (1 / 12) - 1
    total = np.zeros_like(x)
    previous = np.zeros_like(x)
    for month in range(1, months + 1):
        cumulative = expected_purchases(bg, month * DAYS_PER_MONTH / period_days, x, t_x, T)
        total += (cumulative - previous) / (1 + monthly) ** month
        previous = cumulative
    result: Array = margin * spend * total
    return result


def _check_summary(x: Array, t_x: Array, T: Array) -> None:
    if not (len(x) == len(t_x) == len(T)) or len(x) == 0:
        raise FitError("x, t_x and T must be non-empty and of equal length")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise FitError("need x >= 0 and 0 <= t_x <= T for every customer")


def summarise(
    transactions: Iterable[tuple[str, date, float]], *, calibration_end: date, period: str = "week"
) -> Summary:
    """Per-customer (x, t_x, T, m) from raw transactions up to ``calibration_end`` (inclusive).

    Transactions on the same day count as one purchase (their amounts add up), as in the paper:
    ``x`` is the number of distinct purchase days after the first."""
    if period not in PERIOD_DAYS:
        raise ValueError(f"period must be one of {', '.join(PERIOD_DAYS)}")
    days: dict[str, dict[date, float]] = {}
    for customer, day, amount in transactions:
        if day <= calibration_end:
            per_day = days.setdefault(customer, {})
            per_day[day] = per_day.get(day, 0.0) + amount
    unit = PERIOD_DAYS[period]
    customers, xs, txs, Ts, ms = [], [], [], [], []
    for customer, per_day in days.items():
        ordered = sorted(per_day)
        first, last = ordered[0], ordered[-1]
        customers.append(customer)
        xs.append(len(ordered) - 1)
        txs.append((last - first).days / unit)
        Ts.append((calibration_end - first).days / unit)
        repeat = [per_day[d] for d in ordered[1:]]
        ms.append(sum(repeat) / len(repeat) if repeat else 0.0)
    return Summary(customers, _f(xs), _f(txs), _f(Ts), _f(ms), period)
