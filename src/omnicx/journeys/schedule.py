"""Scheduled entries (birthdays, 30 days after the first order): a daily sweep per journey.

Each live journey whose entry is a :class:`~omnicx.journeys.definition.Schedule` has one
``journey.sweep:{journey}`` timer. When it runs it reads, set-based, every live profile with the
trait, works out each one's moment (the anniversary or the date, moved by the offset, at the
local time in the customer's timezone) and, for the moments in ``[from, now + 1 day)``, inserts
an enter timer due at that moment, keyed by journey, customer and occurrence date (so sweeps that
overlap, or a republish, add nothing twice). Then it moves itself to the end of what it covered.
A paused journey's sweep waits; a stopped journey's ends (publishing again starts it anew).

The enter timers are ordinary ones: the engine checks the re-entry policy and enters the
customer with the occurrence as the trigger, its date as the entry key.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.db import dialect_insert
from omnicx.journeys.catalog import Definitions
from omnicx.journeys.definition import SCHEDULED, Schedule
from omnicx.journeys.models import Journey
from omnicx.journeys.projector import ENTER, digest
from omnicx.journeys.timing import local_instant, read_date
from omnicx.messaging.policies import zone_of
from omnicx.profiles.models import Profile
from omnicx.profiles.record import chunks
from omnicx.settings import Settings
from omnicx.timers import Timer

SWEEP = "journey.sweep"
AHEAD = timedelta(days=1)


def sweep_key(journey_id: str) -> str:
    return f"{SWEEP}:{journey_id}"


async def start(session: AsyncSession, *, journey_id: str, now: datetime) -> None:
    """Set the journey's sweep to run now, covering from now on (publishing calls this)."""
    key = sweep_key(journey_id)
    payload = {"key": key, "journey": journey_id, "from": now.isoformat()}
    await timers.schedule(session, kind=SWEEP, key=key, due_at=now, payload=payload)


def moments(
    spec: Schedule, value: object, zone: ZoneInfo, lo: datetime, hi: datetime
) -> Iterator[tuple[date, datetime]]:
    """The occurrences (date, instant) of a trait's value that fall in ``[lo, hi)``."""
    found = read_date(value, None, zone)
    if found is None:
        return
    day = found.astimezone(zone).date()
    if spec.on == "date":
        candidates = [day]
    else:
        years = range(lo.astimezone(zone).year - 1, hi.astimezone(zone).year + 2)
        candidates = [_anniversary(day, year) for year in years]
    for occurrence in candidates:
        at = local_instant(occurrence + spec.offset, spec.at, zone)
        if lo <= at < hi:
            yield occurrence, at


def _anniversary(day: date, year: int) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=year, day=28)


class Sweeper:
    def __init__(self, settings: Settings, definitions: Definitions) -> None:
        self.default_zone = settings.messaging_default_timezone
        self.hold = timedelta(seconds=settings.journey_hold_seconds)
        self.definitions = definitions

    async def __call__(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        journey = await session.get(Journey, payload["journey"])
        if journey is None or journey.status not in ("live", "paused"):
            return  # stopped or deleted: the sweep ends with this run
        key = payload["key"]
        if journey.status == "paused":
            await timers.schedule(
                session, kind=SWEEP, key=key, due_at=now + self.hold, payload=payload
            )
            return
        assert journey.live_version is not None
        definition = await self.definitions.get(session, journey.id, journey.live_version)
        spec = definition.entry.schedule
        if spec is None:
            return  # a new version enters on events
        lo, hi = datetime.fromisoformat(payload["from"]), now + AHEAD
        await self._enter_timers(session, journey.id, spec, lo, hi)
        await timers.schedule(
            session, kind=SWEEP, key=key, due_at=hi, payload={**payload, "from": hi.isoformat()}
        )

    async def _enter_timers(
        self, session: AsyncSession, journey_id: str, spec: Schedule, lo: datetime, hi: datetime
    ) -> None:
        value = Profile.traits[spec.trait].as_string()
        stmt = select(Profile.id, value, Profile.traits["timezone"].as_string()).where(
            Profile.merged_into.is_(None), Profile.erased_at.is_(None), value.is_not(None)
        )
        fixed = ZoneInfo(spec.zone) if spec.zone else None
        rows = []
        for profile_id, trait, tz in await session.execute(stmt):
            zone = fixed or zone_of({"timezone": tz}, self.default_zone)
            for occurrence, at in moments(spec, trait, zone, lo, hi):
                key = f"{ENTER}:{digest(journey_id, profile_id, 'schedule', occurrence)[:40]}"
                event = {
                    "name": SCHEDULED,
                    "message_id": f"schedule:{journey_id}:{profile_id}:{occurrence.isoformat()}",
                    "timestamp": at.isoformat(),
                    "properties": {
                        "trait": spec.trait,
                        "value": trait,
                        "occurrence": occurrence.isoformat(),
                    },
                }
                payload = {
                    "key": key,
                    "journey": journey_id,
                    "profile": profile_id,
                    "entry_key": digest(f"schedule:{occurrence.isoformat()}"),
                    "event": event,
                }
                rows.append(
                    {"kind": ENTER, "key": key, "due_at": at, "payload": payload, "attempts": 0}
                )
        for part in chunks(rows):
            await session.execute(
                dialect_insert(session, Timer)
                .values(list(part))
                .on_conflict_do_nothing(index_elements=["key"])
            )
