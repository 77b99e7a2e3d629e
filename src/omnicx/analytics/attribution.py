"""Attribution of orders to channels and journeys, paths before orders and abandonment, and
per-journey funnels, read from the timeline.

- **Touches** are timeline events named in ``analytics_touch_events`` (messages sent, opened,
  clicked; conversations; journey entries). A touch's channel is its ``channel`` property (the
  message's channel: email, sms, push…) or else the channel of the event itself; its journey is
  its ``journey_id`` property.
- **Attribution**: each counted order placed in the range is credited to the touches of the same
  customer in the ``window_days`` before it: *last* touch (all to the last), *first* touch (all to
  the first) or *position*-based (40 % first, 40 % last, 20 % shared by those between; one touch
  takes all, two share half each). Orders with no touch in the window go to ``(none)``.
- **Paths**: for each order (``Order Completed``) or abandonment (``Cart Abandoned``) in the range,
  the customer's last ``steps`` events before it within the window, each as ``channel:event``
  (pages and screens as ``channel:page``), repeats in a row collapsed; the most common sequences.
- **Journey funnel**: journeys record a ``Journey Step`` event carrying ``journey_id`` and ``node``
  properties each time a customer runs a node; per node, how many customers reached it and the
  drop-off from the node before (nodes ordered by when they were first reached).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce.models import Order
from omnicx.profiles.models import Event

AttributionModel = Literal["last", "first", "position"]
Anchor = Literal["order", "abandonment"]
ANCHOR_EVENTS = {"order": "Order Completed", "abandonment": "Cart Abandoned"}
NONE = "(none)"


def credit(touches: int, model: AttributionModel) -> list[float]:
    """Share of one order's value each touch (in time order) receives."""
    if touches == 0:
        return []
    if model == "last":
        return [0.0] * (touches - 1) + [1.0]
    if model == "first":
        return [1.0] + [0.0] * (touches - 1)
    if touches == 1:
        return [1.0]
    if touches == 2:
        return [0.5, 0.5]
    middle = 0.2 / (touches - 2)
    return [0.4] + [middle] * (touches - 2) + [0.4]


def _channel_of(prop: Any, own: str) -> str:
    return str(prop) if isinstance(prop, str) and prop else own


async def attribution(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    model: AttributionModel,
    window_days: float,
    touch_events: list[str],
) -> dict[str, Any]:
    window = timedelta(days=window_days)
    orders = (
        select(
            Order.id.label("order_id"),
            Order.profile_id.label("profile_id"),
            Order.placed_at.label("placed_at"),
            (Order.total - Order.refunded).label("value"),
        )
        .where(
            Order.profile_id.is_not(None),
            Order.placed_at >= start,
            Order.placed_at < end,
            text("orders.status NOT IN ('cancelled', 'refunded')"),
        )
        .subquery("o")
    )
    values = {
        row.order_id: float(row.value) for row in (await session.execute(select(orders))).all()
    }
    touches: dict[str, list[tuple[datetime, str, str | None]]] = defaultdict(list)
    if values and touch_events:
        stmt = (
            select(
                orders.c.order_id,
                orders.c.placed_at,
                Event.timestamp,
                Event.channel,
                Event.properties["channel"].as_string(),
                Event.properties["journey_id"].as_string(),
            )
            .join(Event, Event.profile_id == orders.c.profile_id)
            .where(
                Event.event.in_(touch_events),
                Event.timestamp <= orders.c.placed_at,
                Event.timestamp >= start - window,
            )
        )
        for order_id, placed_at, at, own, prop, journey in (await session.execute(stmt)).all():
            if at >= placed_at - window:
                touches[order_id].append((at, _channel_of(prop, own), journey))
    channels: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    journeys: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for order_id, value in values.items():
        path = sorted(touches.get(order_id, []))
        shares = credit(len(path), model)
        if not path:
            channels[NONE]["orders"] += 1
            channels[NONE]["revenue"] += value
            journeys[NONE]["orders"] += 1
            journeys[NONE]["revenue"] += value
            continue
        for (_at, channel, journey), share in zip(path, shares, strict=True):
            for table, key in ((channels, channel), (journeys, journey or NONE)):
                table[key]["orders"] += share
                table[key]["revenue"] += share * value

    def rows(table: dict[str, dict[str, float]], name: str) -> list[dict[str, Any]]:
        out = [
            {name: k, "orders": round(v["orders"], 4), "revenue": round(v["revenue"], 2)}
            for k, v in table.items()
            if v["orders"] > 0
        ]
        return sorted(out, key=lambda r: (-r["revenue"], r[name]))

    return {
        "orders": len(values),
        "revenue": round(sum(values.values()), 2),
        "channels": rows(channels, "channel"),
        "journeys": rows(journeys, "journey_id"),
    }


async def paths(
    session: AsyncSession,
    *,
    anchor: Anchor,
    start: datetime,
    end: datetime,
    steps: int,
    window_days: float,
    limit: int,
) -> dict[str, Any]:
    window = timedelta(days=window_days)
    anchor_name = ANCHOR_EVENTS[anchor]
    anchors = (
        select(
            Event.id.label("id"), Event.profile_id.label("profile_id"), Event.timestamp.label("at")
        )
        .where(
            Event.event == anchor_name,
            Event.profile_id.is_not(None),
            Event.timestamp >= start,
            Event.timestamp < end,
        )
        .subquery("a")
    )
    total = (await session.execute(select(func.count()).select_from(anchors))).scalar_one()
    stmt = (
        select(
            anchors.c.id,
            anchors.c.at,
            Event.timestamp,
            Event.id,
            Event.type,
            Event.event,
            Event.channel,
            Event.properties["channel"].as_string(),
        )
        .join(Event, Event.profile_id == anchors.c.profile_id)
        .where(
            Event.timestamp < anchors.c.at,
            Event.timestamp >= start - window,
            Event.type.in_(("track", "page", "screen")),
            Event.event.is_distinct_from(anchor_name),
        )
    )
    before: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
    for anchor_id, at, ts, event_id, kind, name, own, prop in (await session.execute(stmt)).all():
        if ts >= at - window:
            label = name if kind == "track" and name else kind
            before[anchor_id].append((ts, event_id, f"{_channel_of(prop, own)}:{label}"))
    counter: Counter[tuple[str, ...]] = Counter()
    for events in before.values():
        tokens: list[str] = []
        for _ts, _id, token in sorted(events):
            if not tokens or tokens[-1] != token:
                tokens.append(token)
        counter[tuple(tokens[-steps:])] += 1
    rows = [
        {
            "path": list(path),
            "count": count,
            "share": round(count / total, 4) if total else None,
        }
        for path, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    ]
    return {"anchors": total, "without_prior_events": total - len(before), "paths": rows}


async def journey_funnel(
    session: AsyncSession, *, journey_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    node = Event.properties["node"].as_string()
    stmt = (
        select(node, func.count(func.distinct(Event.profile_id)), func.min(Event.timestamp))
        .where(
            Event.event == "Journey Step",
            Event.properties["journey_id"].as_string() == journey_id,
            node.is_not(None),
            Event.profile_id.is_not(None),
            Event.timestamp >= start,
            Event.timestamp < end,
        )
        .group_by(node)
    )
    found = sorted((await session.execute(stmt)).all(), key=lambda r: (r[2], r[0]))
    rows: list[dict[str, Any]] = []
    entered = found[0][1] if found else 0
    previous: int | None = None
    for node_id, reached, _first in found:
        rows.append(
            {
                "node_id": node_id,
                "customers": reached,
                "of_entered": round(reached / entered, 4) if entered else None,
                "drop_off": (round(1 - reached / previous, 4) if previous else None),
            }
        )
        previous = reached
    return rows
