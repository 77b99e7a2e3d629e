"""When a wait ends: durations, local time windows, and dates read from traits or the trigger.

Local windows are computed on the wall clock of the customer's ``timezone`` trait (the messaging
default when it has none) with :mod:`zoneinfo`, day by day, each boundary converted to UTC on its
own date: so "10:00–20:00" is 10:00 local on both sides of a DST change, a window opening at a
time the clocks skip opens when they land (02:30 on a spring-forward night is 03:30), and a
window may cross midnight ("22:00-06:00" belongs to the day it starts on).

A date reference reads an ISO date or date-time; a bare date is taken at ``at`` (default
midnight) in the customer's timezone, then shifted by ``offset``. A value that is missing or not
a date makes the wait end at once, with the reason recorded on the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from omnicx.journeys.definition import DateRef, Wait, Window

MAX_DAYS = 15  # a window with at least one allowed day always opens within a fortnight


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Wall-clock ``at`` on ``day`` in ``zone`` as a UTC instant (a skipped time lands after)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def next_in_window(after: datetime, window: Window, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` inside ``window`` on an allowed day."""
    first = after.astimezone(zone).date() - timedelta(days=1)  # a window opened yesterday
    for offset in range(MAX_DAYS):
        day = first + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        opens = local_instant(day, window.start, zone)
        closes_day = day if window.start < window.end else day + timedelta(days=1)
        closes = local_instant(closes_day, window.end, zone)
        if after < opens:
            return opens
        if after < closes:
            return after
    raise ValueError("a window with no allowed day")  # the definition parser refuses this


def read_date(value: object, at: time | None, zone: ZoneInfo) -> datetime | None:
    """An ISO date or date-time as UTC (a date at ``at`` local time, a naive date-time local)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        if len(text) == 10:
            return local_instant(date.fromisoformat(text), at or time(0), zone)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    if at is not None:
        local = parsed.astimezone(zone)
        return local_instant(local.date(), at, zone)
    return parsed.astimezone(UTC)


def date_of(
    ref: DateRef, traits: Mapping[str, object], context: Mapping[str, object], zone: ZoneInfo
) -> datetime | None:
    source = traits if ref.source == "trait" else context
    found = read_date(source.get(ref.name), ref.at, zone)
    return None if found is None else found + ref.offset


def wait_end(
    node: Wait,
    now: datetime,
    *,
    traits: Mapping[str, object],
    context: Mapping[str, object],
    zone: ZoneInfo,
) -> tuple[datetime, str | None]:
    """When the wait ends, and a note when it ends at once for want of a date."""
    if node.until is not None:
        when = date_of(node.until, traits, context, zone)
        if when is None:
            return now, f"no date in {node.until.source} {node.until.name!r}"
        return max(when, now), None
    when = now + (node.duration or timedelta())
    if node.window is not None:
        when = next_in_window(when, node.window, zone)
    return when, None
