"""A/B test statistics, computed as GrowthBook's stats engine (gbstats) does.

For each metric a variant is summarised by ``n`` (exposed customers), its mean and variance:
a conversion rate is a proportion (variance ``p(1−p)``, as gbstats' ProportionStatistic), revenue
per customer a sample mean (variance ``(Σv² − (Σv)²/n)/(n−1)``, as its SampleMeanStatistic).

- **Frequentist** (gbstats ``TwoSidedTTest``): relative uplift ``(μ_B − μ_A)/μ_A``, its variance
  by the delta method ``σ²_B/(μ_A² n_B) + σ²_A μ_B²/(μ_A⁴ n_A)``, Welch–Satterthwaite degrees of
  freedom, a two-sided t p-value and a 95 % interval.
- **Sequential** (gbstats ``SequentialTwoSidedTTest``): the always-valid confidence sequence of
  Waudby-Smith et al. 2023 (eq. 9, mixing parameter ρ from the tuning parameter, eq. 161) and its
  p-value (eq. 155), so the result may be looked at any number of times.
- **Bayesian chance to win**: the uplift's posterior under a flat prior is normal with the same
  mean and variance, so P(B beats A) = Φ(uplift / sd).
- **Sample-ratio mismatch**: gbstats' χ² test of the exposures against the planned weights; a
  p-value below 0.001 (GrowthBook's default) raises a warning.

Where gbstats returns an uninformative result (a control with no conversions, zero variance, fewer
than two customers) we return the point estimates with ``p_value``/``ci`` set to ``None`` and say
why in ``note``, rather than a made-up p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import chi2, norm
from scipy.stats import t as student_t

SRM_THRESHOLD = 0.001
SRM_WARNING = (
    "sample ratio mismatch: exposures differ from the planned split more than chance allows "
    f"(p < {SRM_THRESHOLD}); check assignment before trusting the result"
)
DEFAULT_TUNING = 5000.0


@dataclass(frozen=True, slots=True)
class Moments:
    """A metric in one variant: customers, mean and per-customer variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def proportion(cls, n: int, conversions: int) -> Moments:
        if n < 0 or conversions < 0 or conversions > n:
            raise ValueError("need 0 <= conversions <= n")
        p = conversions / n if n else 0.0
        return cls(n, p, p * (1 - p))

    @classmethod
    def sample(cls, n: int, total: float, sum_squares: float) -> Moments:
        if n < 0:
            raise ValueError("n must be >= 0")
        mean = total / n if n else 0.0
        variance = (sum_squares - total * total / n) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, max(variance, 0.0))


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment B against control A on one metric; effects are relative (0.1 = +10 %)."""

    control_mean: float
    treatment_mean: float
    uplift: float | None
    stddev: float | None
    p_value: float | None
    ci: tuple[float, float] | None
    chance_to_win: float | None
    sequential: bool
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def delta_variance(a: Moments, b: Moments) -> float:
    """Variance of the relative uplift by the delta method (gbstats ``TTest.variance``)."""
    return b.variance / (a.mean**2 * b.n) + a.variance * b.mean**2 / (a.mean**4 * a.n)


def welch_dof(a: Moments, b: Moments) -> float:
    """Welch–Satterthwaite degrees of freedom (gbstats ``TTest.dof``)."""
    va, vb = a.variance / a.n, b.variance / b.n
    return (va + vb) ** 2 / (vb**2 / (b.n - 1) + va**2 / (a.n - 1))


def sequential_rho(alpha: float, tuning: float) -> float:
    """Mixing parameter ρ for the tuning parameter N (Waudby-Smith et al. 2023, eq. 161)."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)


def sequential_halfwidth(s2: float, n: int, alpha: float, tuning: float) -> float:
    """Half-width of the two-sided confidence sequence (Waudby-Smith et al. 2023, eq. 9)."""
    rho2 = sequential_rho(alpha, tuning) ** 2
    return math.sqrt(s2) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )


def compare(
    a: Moments,
    b: Moments,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning: float = DEFAULT_TUNING,
) -> Comparison:
    """Relative uplift of B over A with p-value, interval and chance to win."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")
    if tuning <= 0:
        raise ValueError("the sequential tuning parameter must be positive")

    def partial(uplift: float | None, note: str) -> Comparison:
        return Comparison(a.mean, b.mean, uplift, None, None, None, None, sequential, note)

    if a.n < 2 or b.n < 2:
        return partial(None, "each variant needs at least two customers")
    if a.mean == 0:
        return partial(None, "the control's mean is zero: a relative uplift is undefined")
    uplift = (b.mean - a.mean) / a.mean
    variance = delta_variance(a, b)
    if variance <= 0 or a.variance <= 0 and b.variance <= 0:
        return partial(uplift, "zero variance: no interval can be computed")
    sd = math.sqrt(variance)
    win = float(norm.cdf(uplift / sd))
    if sequential:
        n = a.n + b.n
        rho2 = sequential_rho(alpha, tuning) ** 2
        half = sequential_halfwidth(variance * n, n, alpha, tuning)
        # eq. 155, reparameterised as gbstats does
        st2 = uplift**2 * n / variance
        tr2p1 = n * rho2 + 1
        log_e = rho2 * st2 / (2 * tr2p1) - 0.5 * math.log(tr2p1)
        p_value = min(math.exp(-log_e), 1.0) if log_e > -700 else 1.0
    else:
        dof = welch_dof(a, b)
        half = float(student_t.ppf(1 - alpha / 2, dof)) * sd
        p_value = float(2 * student_t.sf(abs(uplift / sd), dof))
    return Comparison(
        a.mean, b.mean, uplift, sd, p_value, (uplift - half, uplift + half), win, sequential
    )


def srm_p_value(exposures: Sequence[int], weights: Sequence[float] | None = None) -> float:
    """χ² goodness of fit of the exposures to the planned split (gbstats ``check_srm``)."""
    if weights is None:
        weights = [1.0] * len(exposures)
    if len(weights) != len(exposures):
        raise ValueError("one weight per variant")
    total = sum(exposures)
    if not total or len(exposures) < 2:
        return 1.0
    weight_sum = sum(weights)
    stat = 0.0
    for observed, weight in zip(exposures, weights, strict=True):
        if weight <= 0:
            continue
        expected = weight / weight_sum * total
        stat += (observed - expected) ** 2 / expected
    return float(chi2.sf(stat, len(exposures) - 1))


def parse_counts(text: str) -> tuple[int, int]:
    """``"1000/120"`` → (1000 exposed, 120 converted)."""
    left, sep, right = text.partition("/")
    try:
        n, conversions = int(left), int(right)
    except ValueError:
        raise ValueError(f"{text!r}: expected N/CONVERSIONS, e.g. 1000/120") from None
    if not sep or n < 0 or conversions < 0 or conversions > n:
        raise ValueError(f"{text!r}: expected N/CONVERSIONS with 0 <= CONVERSIONS <= N")
    return n, conversions
