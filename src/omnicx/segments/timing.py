"""When can a definition's answer for one profile change with no new event?

For each time-relative condition, the moments a qualifying row crosses a window edge: an event
leaving a ``within`` window, a follow-up window running out (the abandoned-cart shape enters
then), an order or a date trait crossing its "days ago" line. The earliest future one is when
the segment is re-evaluated for that profile, a millisecond past it (the comparisons are strict,
so the answer flips just after the edge: an edge at exactly "now" is still ahead). It is
conservative: a re-evaluation that changes nothing costs one query and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics.models import computed_traits_of
from omnicx.commerce.models import Order
from omnicx.profiles.models import Event, Profile
from omnicx.segments.compiler import LIVE_ORDER
from omnicx.segments.language import (
    DAY_OPS,
    And,
    CommerceAmountCond,
    EventCond,
    LastOrderCond,
    Node,
    Not,
    NotFollowedCond,
    Or,
    TraitCond,
)

SCAN_LIMIT = 1000
# An answer changes just after a window edge, not on it (an order exactly a day old is not yet
# "more than a day ago"), so each edge is re-evaluated this moment past it.
PAST_EDGE = timedelta(milliseconds=1)


async def next_change(
    session: AsyncSession, node: Node, profile_id: str, now: datetime
) -> datetime | None:
    found: list[datetime] = []
    await _walk(session, node, profile_id, now, found, {})
    future = [t + PAST_EDGE for t in found if t + PAST_EDGE > now]
    return min(future) if future else None


async def _walk(
    session: AsyncSession,
    node: Node,
    pid: str,
    now: datetime,
    found: list[datetime],
    cache: dict[str, Any],
) -> None:
    match node:
        case And(items) | Or(items):
            for item in items:
                await _walk(session, item, pid, now, found, cache)
        case Not(item):
            await _walk(session, item, pid, now, found, cache)
        case TraitCond(key, compare, computed) if compare.op in DAY_OPS:
            traits = await _traits(session, pid, computed, cache)
            when = _as_time(traits.get(key))
            if when is not None:
                found += [when, when + timedelta(days=float(compare.value))]
        case EventCond(event, _, _, _, within) if within is not None:
            oldest = await _scalar(
                session,
                select(func.min(Event.timestamp)).where(
                    Event.profile_id == pid,
                    Event.event == event,
                    Event.timestamp >= now - within,
                    Event.timestamp <= now,
                ),
            )
            if oldest is not None:
                found.append(oldest + within)
            # An event stamped in the future enters the window when its time comes.
            upcoming = await _scalar(
                session,
                select(func.min(Event.timestamp)).where(
                    Event.profile_id == pid, Event.event == event, Event.timestamp > now
                ),
            )
            if upcoming is not None:
                found.append(upcoming)
        case NotFollowedCond(event, _, within, _, then_within):
            stamps = (
                await session.execute(
                    select(Event.timestamp)
                    .where(
                        Event.profile_id == pid,
                        Event.event == event,
                        Event.timestamp >= now - within,
                    )
                    .order_by(Event.timestamp)
                    .limit(SCAN_LIMIT)
                )
            ).scalars()
            for stamp in stamps:
                found += [stamp + then_within, stamp + within, stamp]
        case CommerceAmountCond(_, _, within, _) if within is not None:
            oldest = await _scalar(
                session,
                select(func.min(Order.placed_at)).where(
                    Order.profile_id == pid,
                    Order.status.in_(LIVE_ORDER),
                    Order.placed_at >= now - within,
                ),
            )
            if oldest is not None:
                found.append(oldest + within)
        case LastOrderCond(compare):
            latest = await _scalar(
                session,
                select(func.max(Order.placed_at)).where(
                    Order.profile_id == pid, Order.status.in_(LIVE_ORDER)
                ),
            )
            if latest is not None:
                found.append(latest + timedelta(days=float(compare.value)))
        case _:
            pass


async def _scalar(session: AsyncSession, stmt: Any) -> datetime | None:
    value = (await session.execute(stmt)).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


async def _traits(
    session: AsyncSession, pid: str, computed: bool, cache: dict[str, Any]
) -> dict[str, Any]:
    key = "computed" if computed else "traits"
    if key not in cache:
        column = computed_traits_of(Profile.id) if computed else Profile.traits
        value = (
            await session.execute(select(column).where(Profile.id == pid))
        ).scalar_one_or_none()
        cache[key] = value if isinstance(value, dict) else {}
    result: dict[str, Any] = cache[key]
    return result


def _as_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value[:19].replace(" ", "T"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC)
