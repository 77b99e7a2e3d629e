"""Waits in the customer's local time: windows across timezones and DST changes, dates."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from omnicx.db import Database
from omnicx.journeys.definition import DAYS, DateRef, Window
from omnicx.journeys.timing import date_of, next_in_window
from tests.journeys.factories import drain, identify, journey, runs, template, track

OSLO, NEW_YORK, TOKYO = (
    ZoneInfo("Europe/Oslo"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Tokyo"),
)
EVERY_DAY = tuple(range(7))
WEEKDAYS = tuple(range(5))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def window(start: str, end: str, days: tuple[int, ...] = EVERY_DAY) -> Window:
    return Window(time.fromisoformat(start), time.fromisoformat(end), days)


@pytest.mark.parametrize(
    ("after", "zone", "win", "expected"),
    [
        # Inside the window: at once.
        (utc(2025, 6, 4, 12), OSLO, window("10:00", "20:00"), utc(2025, 6, 4, 12)),
        # Friday evening in Oslo, weekdays only: Monday 10:00 CEST.
        (utc(2025, 6, 6, 19), OSLO, window("10:00", "20:00", WEEKDAYS), utc(2025, 6, 9, 8)),
        # Spring forward (Oslo, Sunday 30 March 2025): 10:00 is 08:00 UTC, no longer 09:00.
        (utc(2025, 3, 29, 20), OSLO, window("10:00", "20:00"), utc(2025, 3, 30, 8)),
        # Fall back (Oslo, Sunday 26 October 2025): 10:00 is 09:00 UTC, no longer 08:00.
        (utc(2025, 10, 25, 19), OSLO, window("10:00", "20:00"), utc(2025, 10, 26, 9)),
        # New York springs forward on 9 March 2025, weekdays 09:00-17:00: Monday 13:00 UTC.
        (utc(2025, 3, 7, 23), NEW_YORK, window("09:00", "17:00", WEEKDAYS), utc(2025, 3, 10, 13)),
        # A window opening at a time the clocks skip opens when they land (03:30 CEST).
        (utc(2025, 3, 29, 23), OSLO, window("02:30", "05:00"), utc(2025, 3, 30, 1, 30)),
        # Across midnight: 01:00 local is inside last night's 22:00-06:00; 07:00 waits for 22:00.
        (utc(2025, 6, 4, 23), OSLO, window("22:00", "06:00"), utc(2025, 6, 4, 23)),
        (utc(2025, 6, 4, 5), OSLO, window("22:00", "06:00"), utc(2025, 6, 4, 20)),
        # The same instant is evening in Tokyo: next morning there.
        (utc(2025, 6, 4, 12), TOKYO, window("10:00", "20:00"), utc(2025, 6, 5, 1)),
    ],
)
def test_next_moment_in_a_local_window(
    after: datetime, zone: ZoneInfo, win: Window, expected: datetime
) -> None:
    assert next_in_window(after, win, zone) == expected


def test_dates_from_traits_and_the_trigger() -> None:
    birthday = DateRef("trait", "birthday", time(9), -timedelta(days=1))
    assert date_of(birthday, {"birthday": "2025-06-01"}, {}, OSLO) == utc(2025, 5, 31, 7)
    assert date_of(birthday, {"birthday": "not a date"}, {}, OSLO) is None
    expiry = DateRef("context", "expires_at", None, -timedelta(hours=2))
    assert date_of(expiry, {}, {"expires_at": "2025-06-08T12:00:00+00:00"}, OSLO) == utc(
        2025, 6, 8, 10
    )
    assert DAYS[0] == "mon"


SURVEY = {
    "entry": {"event": "Order Completed", "key": "order_id"},
    "nodes": [
        {
            "id": "later",
            "type": "wait",
            "duration": "1d",
            "window": "10:00-20:00",
            "days": "weekdays",
        },
        {"id": "ask", "type": "send", "message": "ask", "channel": "inapp"},
    ],
}


async def test_customers_in_different_timezones_wake_at_their_own_ten_oclock(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    """Saturday evening before Europe's spring-forward night: a day later is Sunday, so Oslo
    waits for Monday 10:00 CEST; New York (already on summer time) for Monday 10:00 EDT."""
    await template(client, admin_headers, "ask")
    await journey(client, admin_headers, "survey", SURVEY)
    at = utc(2025, 3, 29, 20)
    for user, zone in (("oslo", "Europe/Oslo"), ("ny", "America/New_York"), ("nozone", "")):
        await identify(client, write_key, user, at, **({"timezone": zone} if zone else {}))
        await track(client, write_key, user, "Order Completed", at, order_id=f"O-{user}")
    await drain(db, app.state.hooks, at)
    until = {}
    for user in ("oslo", "ny", "nozone"):
        [run] = await runs(client, admin_headers, f"user_id:{user}")
        until[user] = datetime.fromisoformat(run["wait_until"])
    assert until == {
        "oslo": utc(2025, 3, 31, 8),  # 10:00 CEST
        "ny": utc(2025, 3, 31, 14),  # 10:00 EDT
        "nozone": utc(2025, 3, 31, 10),  # the default timezone, UTC
    }
    await drain(db, app.state.hooks, utc(2025, 3, 31, 9))
    [oslo] = await runs(client, admin_headers, "user_id:oslo")
    [ny] = await runs(client, admin_headers, "user_id:ny")
    assert (oslo["status"], ny["status"]) == ("completed", "waiting")
