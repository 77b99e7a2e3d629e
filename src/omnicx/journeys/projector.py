"""How events reach journeys: inside the transaction that stores them, as due-now timers.

For each newly stored event (ingested, or observed by OmniCX such as ``Segment Entered``,
``Cart Abandoned``, ``Pickup Ready``) the projector

- schedules an *enter* timer for every live journey whose entry it matches; the timer's key is
  derived from journey, profile and the event's message id, so a resent event enters once, and
  the run's entry key (the ``key`` property's value, or the message id) makes one cart enter once;
- looks up the profile's active runs (an indexed lookup, only when the event's name is a goal or
  an awaited event somewhere) and schedules a *goal* timer for each run the event converts, and a
  *wake* for each run waiting for it (replacing that run's timeout, same key).

The worker then does the work: ingest only adds a few timer rows, and the reaction is durable
(it commits with the event). Timers are due at the event's time, or now if that is later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.db import utcnow
from omnicx.hooks import StoredEvent
from omnicx.journeys.catalog import Catalog, Definitions
from omnicx.journeys.definition import WaitForEvent
from omnicx.journeys.matching import all_hold, matches
from omnicx.journeys.models import JourneyRun

ENTER, RUN, GOAL = "journey.enter", "journey.run", "journey.goal"
LIVE_RUN = ("active", "waiting")


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def run_key(run_id: int) -> str:
    return f"{RUN}:{run_id}"


def goal_key(run_id: int) -> str:
    return f"{GOAL}:{run_id}"


def event_payload(ev: StoredEvent) -> dict[str, Any]:
    return {
        "name": ev.event,
        "message_id": ev.message_id,
        "timestamp": ev.timestamp.isoformat(),
        "properties": ev.properties,
    }


class Projector:
    def __init__(self, catalog: Catalog, definitions: Definitions) -> None:
        self.catalog = catalog
        self.definitions = definitions

    async def __call__(self, session: AsyncSession, events: Sequence[StoredEvent]) -> None:
        listening = await self.catalog.listening(session)
        if not listening.cares():
            return
        wall = utcnow()
        for_runs: list[StoredEvent] = []
        for ev in events:
            if ev.type != "track" or not ev.event:
                continue
            for journey_id, entry in listening.entries.get(ev.event, ()):
                if not all_hold(entry.where, ev.properties):
                    continue
                key_value = ev.properties.get(entry.key) if entry.key else None
                if entry.key and key_value in (None, ""):
                    continue  # keyed entry without its key: nothing to enter once by
                key = f"{ENTER}:{digest(journey_id, ev.profile_id, ev.message_id)[:40]}"
                await timers.schedule(
                    session,
                    kind=ENTER,
                    key=key,
                    due_at=min(ev.timestamp, wall),
                    payload={
                        "key": key,
                        "journey": journey_id,
                        "profile": ev.profile_id,
                        "entry_key": digest(
                            f"key:{key_value}" if entry.key else f"message:{ev.message_id}"
                        ),
                        "event": event_payload(ev),
                    },
                )
            if ev.event in listening.goals or ev.event in listening.waits:
                for_runs.append(ev)
        if for_runs:
            await self._runs(session, for_runs, wall)

    async def _runs(self, session: AsyncSession, events: list[StoredEvent], wall: Any) -> None:
        profiles = sorted({ev.profile_id for ev in events})
        runs = (
            await session.execute(
                select(
                    JourneyRun.id,
                    JourneyRun.journey_id,
                    JourneyRun.version,
                    JourneyRun.profile_id,
                    JourneyRun.status,
                    JourneyRun.node,
                    JourneyRun.visit,
                    JourneyRun.context,
                    JourneyRun.entered_at,
                ).where(JourneyRun.profile_id.in_(profiles), JourneyRun.status.in_(LIVE_RUN))
            )
        ).all()
        by_profile: dict[str, list[Any]] = {}
        for run in runs:
            by_profile.setdefault(run.profile_id, []).append(run)
        for ev in events:
            for run in by_profile.get(ev.profile_id, ()):
                definition = await self.definitions.get(session, run.journey_id, run.version)
                due = min(ev.timestamp, wall)
                goal = definition.goal
                if (
                    goal is not None
                    and matches(goal.spec, ev.event, ev.properties, run.context)
                    and (goal.within is None or ev.timestamp <= run.entered_at + goal.within)
                ):
                    await timers.schedule(
                        session,
                        kind=GOAL,
                        key=goal_key(run.id),
                        due_at=due,
                        payload={
                            "key": goal_key(run.id),
                            "run": run.id,
                            "event": event_payload(ev),
                        },
                    )
                    continue
                node = definition.nodes.get(run.node)
                if (
                    run.status == "waiting"
                    and isinstance(node, WaitForEvent)
                    and matches(node.spec, ev.event, ev.properties, run.context)
                ):
                    await timers.schedule(
                        session,
                        kind=RUN,
                        key=run_key(run.id),
                        due_at=due,
                        payload={
                            "key": run_key(run.id),
                            "run": run.id,
                            "visit": run.visit,
                            "wake": "event",
                            "event": event_payload(ev),
                        },
                    )
