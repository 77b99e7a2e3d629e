"""Churn per period and cohort retention tables, from orders.

A customer is *active* in a period when they placed a counted order in it (not cancelled or
refunded). Shops without subscriptions have no cancellation date, so churn is read off activity:

- **churn** of period k: of the customers active in period k−1 (the customers at the start),
  the share not active in k (lost ÷ customers at the start). It is ``None`` until period k has
  ended, and when nobody was active in k−1: an unfinished period or an empty base has no rate,
  which is not the same as a rate of 0.
- **retention** of a cohort (customers whose first order, or first sight of the profile, fell in
  the same period) in its j-th period: the share of the cohort active in that period. Cells for
  periods that have not started yet are ``None`` (empty), not 0; the running period counts what
  has happened so far.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics.periods import (
    Period,
    bucket_label,
    day_number_sql,
    period_index,
    period_of_day,
    period_start,
)
from omnicx.commerce.models import Order
from omnicx.profiles.models import Profile

Cohort = Literal["first_order", "first_seen"]


async def active_periods(
    session: AsyncSession, *, period: Period, now: datetime
) -> dict[str, set[int]]:
    """Each customer's periods with a counted order, up to ``now``."""
    day = day_number_sql(session, Order.placed_at)
    stmt = (
        select(Order.profile_id, day)
        .where(
            Order.profile_id.is_not(None),
            Order.placed_at <= now,
            text("orders.status NOT IN ('cancelled', 'refunded')"),
        )
        .group_by(Order.profile_id, day)
    )
    active: dict[str, set[int]] = defaultdict(set)
    for profile_id, day_no in (await session.execute(stmt)).all():
        active[profile_id].add(period_of_day(int(day_no), period))
    return active


async def churn(
    session: AsyncSession, *, period: Period, start: datetime, end: datetime, now: datetime
) -> list[dict[str, Any]]:
    """One row per period starting in [start, end)."""
    active = await active_periods(session, period=period, now=now)
    by_period: dict[int, set[str]] = defaultdict(set)
    first: dict[str, int] = {}
    for profile_id, periods in active.items():
        first[profile_id] = min(periods)
        for k in periods:
            by_period[k].add(profile_id)
    rows = []
    current = period_index(now, period)
    for k in _indexes(start, end, period):
        row: dict[str, Any] = {"period": bucket_label(k, period), "status": _status(k, current)}
        if k > current:
            row.update(customers_at_start=None, retained=None, lost=None, new=None, active=None)
            row["churn_rate"] = None
            rows.append(row)
            continue
        base, now_active = by_period.get(k - 1, set()), by_period.get(k, set())
        retained = len(base & now_active)
        row.update(
            customers_at_start=len(base),
            retained=retained,
            lost=len(base) - retained,
            new=sum(1 for p in now_active if first[p] == k),
            active=len(now_active),
        )
        complete = k < current
        row["churn_rate"] = (
            round((len(base) - retained) / len(base), 4) if base and complete else None
        )
        rows.append(row)
    return rows


async def cohorts(
    session: AsyncSession,
    *,
    period: Period,
    start: datetime,
    end: datetime,
    now: datetime,
    cohort: Cohort = "first_order",
    periods: int = 12,
) -> list[dict[str, Any]]:
    """Retention table: one row per cohort starting in [start, end), ``periods`` cells each."""
    active = await active_periods(session, period=period, now=now)
    members: dict[int, list[str]] = defaultdict(list)
    if cohort == "first_order":
        for profile_id, ps in active.items():
            members[min(ps)].append(profile_id)
    else:
        stmt = select(Profile.id, Profile.first_seen).where(
            Profile.merged_into.is_(None),
            Profile.erased_at.is_(None),
            Profile.first_seen >= start,
            Profile.first_seen < end,
        )
        for profile_id, first_seen in (await session.execute(stmt)).all():
            members[period_index(first_seen, period)].append(profile_id)
    current = period_index(now, period)
    rows = []
    for c in _indexes(start, end, period):
        people = members.get(c, [])
        if c > current:
            break
        counts: list[int | None] = []
        for j in range(periods):
            k = c + j
            counts.append(None if k > current else sum(1 for p in people if k in active.get(p, ())))
        rows.append(
            {
                "cohort": bucket_label(c, period),
                "size": len(people),
                "active": counts,
                "retention": [
                    None if n is None or not people else round(n / len(people), 4) for n in counts
                ],
            }
        )
    return rows


def _indexes(start: datetime, end: datetime, period: Period) -> range:
    first = period_index(start, period)
    last = period_index(end, period)
    if period_start(last, period) == end:  # end is exclusive
        last -= 1
    return range(first, last + 1)


def _status(k: int, current: int) -> str:
    return "complete" if k < current else "in_progress" if k == current else "not_started"
