"""Experiment results from the timeline: exposures, conversions and revenue per variant.

An exposure is an ``Experiment Viewed`` event (the Segment spec's name, which GrowthBook's
tracking callback also sends) with properties ``experiment_id`` and ``variation_id``; journeys
record one for every customer an A/B split or a holdout assigns, and apps can send their own.
A customer counts once, from their first exposure; one seen in two variants (e.g. two devices
before a merge) is left out of both, as GrowthBook does, and counted in ``multiple_exposures``.

A customer *converts* when the chosen event (default ``Order Completed``; a journey's goal event
works the same way) follows their first exposure within ``window_days``. Revenue per customer is
the net value of their counted orders placed in that window, averaged over every exposed
customer (zero for those who bought nothing).

Each variant is compared with the control (``control`` if a variant has that id, else the first
in order) on conversion rate and on revenue per customer, by :func:`omnicx.analytics.stats.compare`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics import stats
from omnicx.commerce.models import Order
from omnicx.profiles.models import Event

EXPOSURE_EVENT = "Experiment Viewed"


async def exposures(
    session: AsyncSession, *, experiment_id: str, start: datetime | None, end: datetime | None
) -> tuple[dict[str, tuple[str, datetime]], int]:
    """profile → (variation, first exposure); and how many were seen in several variations."""
    variation = Event.properties["variation_id"].as_string()
    stmt = (
        select(Event.profile_id, variation, func.min(Event.timestamp))
        .where(
            Event.event == EXPOSURE_EVENT,
            Event.properties["experiment_id"].as_string() == experiment_id,
            Event.profile_id.is_not(None),
        )
        .group_by(Event.profile_id, variation)
    )
    if start is not None:
        stmt = stmt.where(Event.timestamp >= start)
    if end is not None:
        stmt = stmt.where(Event.timestamp < end)
    seen: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for profile_id, var, first in (await session.execute(stmt)).all():
        if var is not None:
            seen[profile_id].append((str(var), first))
    single = {p: v[0] for p, v in seen.items() if len(v) == 1}
    return single, len(seen) - len(single)


async def results(
    session: AsyncSession,
    *,
    experiment_id: str,
    metric_event: str = "Order Completed",
    window_days: float = 14,
    start: datetime | None = None,
    end: datetime | None = None,
    control: str | None = None,
    weights: Sequence[float] | None = None,
    sequential: bool = False,
    alpha: float = 0.05,
) -> dict[str, Any]:
    exposed, multiple = await exposures(session, experiment_id=experiment_id, start=start, end=end)
    window = timedelta(days=window_days)
    firsts = _first_exposures(experiment_id, start, end)
    converted: set[str] = set()
    stmt = (
        select(Event.profile_id, func.min(Event.timestamp))
        .join(firsts, (firsts.c.profile_id == Event.profile_id) & (Event.timestamp >= firsts.c.at))
        .where(Event.event == metric_event)
        .group_by(Event.profile_id)
    )
    for profile_id, first_conversion in (await session.execute(stmt)).all():
        if profile_id in exposed and first_conversion <= exposed[profile_id][1] + window:
            converted.add(profile_id)
    revenue: dict[str, float] = defaultdict(float)
    orders = (
        select(Order.profile_id, Order.placed_at, Order.total - Order.refunded)
        .join(firsts, (firsts.c.profile_id == Order.profile_id) & (Order.placed_at >= firsts.c.at))
        .where(text("orders.status NOT IN ('cancelled', 'refunded')"))
    )
    for profile_id, placed_at, value in (await session.execute(orders)).all():
        if profile_id in exposed and placed_at <= exposed[profile_id][1] + window:
            revenue[profile_id] += float(value)

    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for profile_id, (variation, _at) in exposed.items():
        v, spent = per[variation], revenue.get(profile_id, 0.0)
        v["n"] += 1
        v["conversions"] += profile_id in converted
        v["revenue"] += spent
        v["revenue_sq"] += spent * spent
    names = sorted(per)
    if control is None:
        control = "control" if "control" in per else (names[0] if names else None)
    if control is not None and control in per:
        names = [control, *(n for n in names if n != control)]
    variants = []
    for name in names:
        v = per[name]
        n, conv = int(v["n"]), int(v["conversions"])
        row: dict[str, Any] = {
            "variation": name,
            "exposures": n,
            "conversions": conv,
            "conversion_rate": round(conv / n, 6) if n else None,
            "revenue": round(v["revenue"], 2),
            "revenue_per_customer": round(v["revenue"] / n, 4) if n else None,
        }
        if name != control and control in per:
            c = per[control]
            row["conversion"] = stats.compare(
                stats.Moments.proportion(int(c["n"]), int(c["conversions"])),
                stats.Moments.proportion(n, conv),
                alpha=alpha,
                sequential=sequential,
            ).as_dict()
            row["revenue_per_customer_uplift"] = stats.compare(
                stats.Moments.sample(int(c["n"]), c["revenue"], c["revenue_sq"]),
                stats.Moments.sample(n, v["revenue"], v["revenue_sq"]),
                alpha=alpha,
                sequential=sequential,
            ).as_dict()
        variants.append(row)
    counts = [int(per[n]["n"]) for n in names]
    srm = stats.srm_p_value(counts, list(weights) if weights else None) if counts else 1.0
    warnings = [stats.SRM_WARNING] if srm < stats.SRM_THRESHOLD else []
    if multiple:
        warnings.append(f"{multiple} customers saw more than one variation and are left out")
    return {
        "experiment_id": experiment_id,
        "metric_event": metric_event,
        "window_days": window_days,
        "control": control,
        "sequential": sequential,
        "variants": variants,
        "srm_p_value": srm,
        "multiple_exposures": multiple,
        "warnings": warnings,
    }


def _first_exposures(experiment_id: str, start: datetime | None, end: datetime | None) -> Any:
    stmt = select(
        Event.profile_id.label("profile_id"), func.min(Event.timestamp).label("at")
    ).where(
        Event.event == EXPOSURE_EVENT,
        Event.properties["experiment_id"].as_string() == experiment_id,
        Event.profile_id.is_not(None),
    )
    if start is not None:
        stmt = stmt.where(Event.timestamp >= start)
    if end is not None:
        stmt = stmt.where(Event.timestamp < end)
    return stmt.group_by(Event.profile_id).subquery("firsts")
