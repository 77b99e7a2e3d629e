"""Frequency caps and quiet hours in the customer's timezone, across DST changes; consent rules.

Every instant is explicit: the service takes ``now``, the delivery loop a clock; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.policies import consent_allows, parse_window, periods, quiet_until, zone_of
from omnicx.messaging.providers.base import Channel
from omnicx.messaging.providers.fake import FakeProvider
from omnicx.settings import Settings
from tests.messaging.factories import customer, setup_brand_and_templates, submit_at

NEW_YORK = ZoneInfo("America/New_York")
NIGHT = parse_window("21:00-08:00")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_quiet_hours_end_at_local_wall_clock_time_across_dst() -> None:
    # 01:30 in New York on an ordinary night: quiet until 08:00 EST = 13:00Z.
    assert quiet_until(utc("2026-03-01T06:30"), NEW_YORK, NIGHT) == utc("2026-03-01T13:00")
    # The night clocks spring forward (02:00 -> 03:00): 08:00 is EDT, 12:00Z.
    assert quiet_until(utc("2026-03-08T06:30"), NEW_YORK, NIGHT) == utc("2026-03-08T12:00")
    # The night clocks fall back (01:30 happens twice): 08:00 EST, 13:00Z.
    assert quiet_until(utc("2026-11-01T05:30"), NEW_YORK, NIGHT) == utc("2026-11-01T13:00")
    # 22:00 local: quiet until tomorrow 08:00.
    assert quiet_until(utc("2026-03-02T03:00"), NEW_YORK, NIGHT) == utc("2026-03-02T13:00")
    # The same instant is mid-afternoon in Tokyo: no quiet hours there.
    assert quiet_until(utc("2026-03-08T06:30"), ZoneInfo("Asia/Tokyo"), NIGHT) is None
    # A daytime window that does not wrap midnight.
    lunch = parse_window("12:00-13:00")
    assert quiet_until(utc("2026-03-02T17:30"), NEW_YORK, lunch) == utc("2026-03-02T18:00")
    assert quiet_until(utc("2026-03-02T18:30"), NEW_YORK, lunch) is None


def test_local_days_are_23_or_25_hours_on_dst_changes() -> None:
    start, end = periods(utc("2026-03-08T15:00"), NEW_YORK)["day"]
    assert (start, end) == (utc("2026-03-08T05:00"), utc("2026-03-09T04:00"))
    start, end = periods(utc("2026-11-01T15:00"), NEW_YORK)["day"]
    assert (end - start).total_seconds() == 25 * 3600
    week_start, week_end = periods(utc("2026-03-08T15:00"), NEW_YORK)["week"]
    assert week_start == utc("2026-03-02T05:00")  # Monday 00:00 EST
    assert week_end == utc("2026-03-09T04:00")  # Monday 00:00 EDT


def test_timezone_trait_and_its_fallback() -> None:
    assert zone_of({"timezone": "Asia/Tokyo"}, "UTC").key == "Asia/Tokyo"
    assert zone_of({"timezone": "Mars/Olympus"}, "Europe/Oslo").key == "Europe/Oslo"
    assert zone_of({"timezone": 7}, "Europe/Oslo").key == "Europe/Oslo"
    assert zone_of({}, "UTC").key == "UTC"


def test_consent_most_specific_wins_and_denials_beat_grants() -> None:
    def allows(consents: dict[tuple[str, str], str], category: str = "marketing") -> bool:
        return consent_allows(
            consents, channel="email", topic="newsletter", category=category, implied=()
        )[0]

    assert not allows({})
    assert allows({("email", "newsletter"): "granted"})
    assert not allows({("email", "newsletter"): "denied", ("all", "all"): "granted"})
    assert allows({("email", "newsletter"): "granted", ("email", "all"): "denied"})
    assert not allows({("email", "all"): "granted", ("all", "newsletter"): "denied"})
    assert allows({("all", "all"): "granted"})
    assert allows({("email", "all"): "denied"}, category="transactional")


async def test_daily_cap_counts_in_the_customers_timezone(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    capped = settings.model_copy(update={"messaging_caps": {"all": {"day": 1}}})
    await customer(client, write_key, "nz", timezone="Pacific/Auckland", consent={"inapp": True})
    await customer(client, write_key, "utc", consent={"inapp": True})
    hooks = app.state.hooks

    async def status(user: str, at: str, message: str = "spring-sale") -> str:
        sent = await submit_at(
            db,
            hooks,
            capped,
            utc(at),
            to=f"user_id:{user}",
            channel="inapp",
            message=message,
            data={"product": "tent", "order_id": "O-1"},
        )
        return f"{sent.status}: {sent.reason}" if sent.status == "skipped" else sent.status

    # 23:30 and 00:30 in Auckland (UTC+13) are two local days, though one UTC day.
    assert await status("nz", "2026-01-10T10:30") == "queued"
    assert await status("nz", "2026-01-10T11:30") == "queued"
    assert await status("nz", "2026-01-10T12:00") == "skipped: frequency cap (all: 1 per day)"
    # For a UTC customer those instants are one day.
    assert await status("utc", "2026-01-10T10:30") == "queued"
    assert (await status("utc", "2026-01-10T11:30")).startswith("skipped: frequency cap")
    # Transactional messages are never capped.
    assert await status("utc", "2026-01-10T11:45", message="receipt") == "queued"


async def test_daily_cap_on_the_23_hour_day_of_a_dst_change(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    capped = settings.model_copy(update={"messaging_caps": {"inapp": {"day": 1}}})
    await customer(client, write_key, "ny", timezone="America/New_York", consent={"inapp": True})

    async def status(at: str) -> str:
        sent = await submit_at(
            db, app.state.hooks, capped, utc(at), to="user_id:ny", channel="inapp"
        )
        return sent.status

    assert await status("2026-03-08T04:30") == "queued"  # 23:30 EST, March 7
    assert await status("2026-03-08T05:30") == "queued"  # 00:30 EST, March 8
    assert await status("2026-03-09T03:30") == "skipped"  # 23:30 EDT, still March 8
    assert await status("2026-03-09T04:30") == "queued"  # 00:30 EDT, March 9


async def test_quiet_hours_defer_to_the_local_morning_or_drop(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    quiet = settings.model_copy(
        update={"messaging_quiet_hours": "21:00-08:00", "messaging_quiet_hours_channels": ["sms"]}
    )
    fake = FakeProvider(Channel.sms, "fake-sms")
    available = {"fake-sms": Channel.sms, "inapp": Channel.inapp}
    await customer(
        client,
        write_key,
        "ny",
        timezone="America/New_York",
        phone="+12125550100",
        consent={"sms": True, "inapp": True},
    )
    await customer(
        client,
        write_key,
        "tokyo",
        timezone="Asia/Tokyo",
        phone="+81312345678",
        consent={"sms": True},
    )
    night = utc("2026-03-08T06:30")  # 01:30 in New York, the night clocks go forward
    hooks = app.state.hooks
    deferred = await submit_at(
        db, hooks, quiet, night, available=available, to="user_id:ny", channel="sms"
    )
    assert deferred.status == "queued" and deferred.due_at == utc("2026-03-08T12:00")
    assert deferred.reason is not None and "quiet hours" in deferred.reason
    dropped = await submit_at(
        db,
        hooks,
        quiet,
        night,
        available=available,
        to="user_id:ny",
        channel="sms",
        quiet_hours="drop",
    )
    assert dropped.status == "skipped" and dropped.reason == "quiet hours (America/New_York)"
    daytime = await submit_at(
        db, hooks, quiet, night, available=available, to="user_id:tokyo", channel="sms"
    )
    assert daytime.due_at == night
    not_quiet_channel = await submit_at(
        db, hooks, quiet, night, available=available, to="user_id:ny", channel="inapp"
    )
    assert not_quiet_channel.due_at == night
    receipt = await submit_at(
        db,
        hooks,
        quiet,
        night,
        available=available,
        to="user_id:ny",
        channel="sms",
        message="receipt",
    )
    assert receipt.status == "skipped"  # no sms variant: channel choice says so
    assert receipt.reason == "sms: no variant"

    clock = [night]
    delivery = Delivery(db, quiet, hooks, {"fake-sms": fake}, clock=lambda: clock[0])
    await delivery.deliver_due()
    assert [m.to.value for m in fake.sent] == ["+81312345678"]
    clock[0] = utc("2026-03-08T11:59")
    await delivery.deliver_due()
    assert len(fake.sent) == 1
    clock[0] = utc("2026-03-08T12:00")
    await delivery.deliver_due()
    assert [m.to.value for m in fake.sent] == ["+81312345678", "+12125550100"]
