"""Scheduled entries on date traits: a birthday every year at 10:00 in each customer's own
timezone, and 30 days after the first order, driven by the daily sweep and enter timers on a
controllable clock. The definition errors name the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from omnicx.db import Database, utcnow
from omnicx.journeys.definition import JourneyDefinitionError, Schedule, parse
from omnicx.journeys.schedule import moments
from tests.journeys.factories import drain, identify, journey, messages, runs, template

BIRTHDAY = {
    "entry": {"schedule": {"trait": "birthday", "on": "anniversary", "at": "10:00"}},
    "reentry": {"cooldown": "300d"},
    "nodes": [{"id": "wish", "type": "send", "message": "happy-birthday", "channel": "inapp"}],
}
THIRTY_DAYS = {
    "entry": {"after_trait": "first_order_at", "days": 30, "at": "10:00"},
    "nodes": [{"id": "ask", "type": "send", "message": "how-was-it", "channel": "inapp"}],
}
OSLO, NEW_YORK = ZoneInfo("Europe/Oslo"), ZoneInfo("America/New_York")


def local(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(10), tzinfo=zone).astimezone(UTC)


async def test_birthdays_at_local_ten_and_thirty_days_after_the_first_order(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h, hooks = admin_headers, app.state.hooks
    t0 = utcnow()
    day = t0.astimezone(OSLO).date() + timedelta(days=2)
    ordered = t0.date() + timedelta(days=2) - timedelta(days=30)
    people = {
        "ana": {"birthday": f"1990-{day:%m-%d}", "timezone": "Europe/Oslo"},
        "bo": {"birthday": f"1985-{day:%m-%d}", "timezone": "America/New_York"},
        "cy": {"birthday": f"1985-{(day + timedelta(days=40)):%m-%d}"},
        "eve": {"first_order_at": f"{ordered.isoformat()}T08:00:00Z", "timezone": "UTC"},
        "fay": {},
    }
    for user, traits in people.items():
        await identify(client, write_key, user, t0 - timedelta(days=60), **traits)
    for name in ("happy-birthday", "how-was-it"):
        await template(client, h, name)
    await journey(client, h, "birthday", BIRTHDAY)
    await journey(client, h, "thirty-days", THIRTY_DAYS)
    await drain(db, hooks, t0)

    moments_ = {
        "ana": local(day, OSLO),
        "bo": local(day, NEW_YORK),  # six hours after Ana's
        "eve": local(t0.date() + timedelta(days=2), ZoneInfo("UTC")),
    }
    for user, at in sorted(moments_.items(), key=lambda kv: kv[1]):
        await drain(db, hooks, at - timedelta(minutes=1))
        assert await runs(client, h, f"user_id:{user}") == [], user
        await drain(db, hooks, at + timedelta(minutes=1))
        [run] = await runs(client, h, f"user_id:{user}")
        assert run["status"] == "completed", user
        entered = datetime.fromisoformat(run["entered_at"])
        assert at <= entered <= at + timedelta(minutes=1), user

    # Far later: nobody else entered, and no occurrence twice.
    await drain(db, hooks, max(moments_.values()) + timedelta(days=2))
    assert await runs(client, h, "user_id:cy") == []
    assert await runs(client, h, "user_id:fay") == []
    ids = {
        u: (await client.get(f"/api/profiles/user_id:{u}", headers=h)).json()["id"]
        for u in moments_
    }
    sent = sorted((m.profile_id, m.template) for m in await messages(db))
    assert sent == sorted(
        [
            (ids["ana"], "happy-birthday"),
            (ids["bo"], "happy-birthday"),
            (ids["eve"], "how-was-it"),
        ]
    )
    events = (await client.get("/api/profiles/user_id:ana/events", headers=h)).json()["items"]
    [entered_event] = [e for e in events if e["event"] == "Journey Entered"]
    assert entered_event["properties"]["trigger"] == "Journey Scheduled"
    [entered_step] = [e for e in events if e["event"] == "Journey Step"][:1]
    assert entered_step["properties"]["node"] == "wish"

    # A stopped journey's sweep ends: Cy's birthday 40 days on enters nobody.
    stop = await client.post("/api/journeys/birthday/stop", headers=h)
    assert stop.status_code == 200, stop.text
    await drain(db, hooks, local(day + timedelta(days=40), ZoneInfo("UTC")) + timedelta(days=1))
    assert await runs(client, h, "user_id:cy") == []


def test_anniversaries_in_a_window_and_29_february() -> None:
    spec = Schedule("birthday", "anniversary", timedelta(), time(10), None)
    utc = ZoneInfo("UTC")
    lo = datetime(2027, 2, 27, tzinfo=UTC)
    found = list(moments(spec, "2000-02-29", utc, lo, lo + timedelta(days=3)))
    assert found == [(date(2027, 2, 28), datetime(2027, 2, 28, 10, tzinfo=UTC))]
    leap = datetime(2028, 2, 28, tzinfo=UTC)
    found = list(moments(spec, "2000-02-29", utc, leap, leap + timedelta(days=3)))
    assert found == [(date(2028, 2, 29), datetime(2028, 2, 29, 10, tzinfo=UTC))]
    once = Schedule("renewal_on", "date", timedelta(days=-7), time(9), None)
    assert list(moments(once, "2027-03-10", utc, lo, lo + timedelta(days=30))) == [
        (date(2027, 3, 10), datetime(2027, 3, 3, 9, tzinfo=UTC))
    ]
    assert list(moments(spec, "not a date", utc, lo, lo + timedelta(days=3))) == []


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"schedule": {"on": "anniversary"}}, "entry.schedule.trait"),
        ({"schedule": {"trait": "birthday", "on": "weekly"}}, "entry.schedule.on"),
        ({"schedule": {"trait": "birthday", "at": "25:00"}}, "entry.schedule.at"),
        ({"schedule": {"trait": "birthday", "offset": "3h"}}, "entry.schedule.offset"),
        ({"schedule": {"trait": "birthday", "timezone": "Mars/Base"}}, "entry.schedule.timezone"),
        ({"after_trait": "first_order_at", "days": "thirty"}, "entry.days"),
    ],
)
def test_schedule_errors_name_the_field(entry: dict[str, object], path: str) -> None:
    with pytest.raises(JourneyDefinitionError) as caught:
        parse({"entry": entry, "nodes": [{"id": "x", "type": "exit"}]})
    assert caught.value.path == path
