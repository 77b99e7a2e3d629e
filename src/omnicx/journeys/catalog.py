"""What the engine and the projector know about journeys, per process.

- :class:`Definitions`: parsed versions by ``(journey, version)``. A published version never
  changes, so each is read and parsed once per process.
- :class:`Catalog`: which event names matter right now: entries of live journeys, goals and
  awaited events of every version of live and paused journeys (runs on an old version still
  wait and convert). It is cached for ``OMNICX_JOURNEY_CACHE_SECONDS``, so an event no journey
  cares about costs the projector a dictionary lookup. A change made in this process (publish,
  pause, resume, stop) is seen at once (:func:`changed` bumps a generation); other processes see
  it within the cache time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.journeys.definition import Entry, JourneyDef, parse
from omnicx.journeys.models import Journey, JourneyVersion

_generation = 0
ACTIVE = ("live", "paused")


def changed() -> None:
    """A journey's status or versions changed: every catalog in this process reloads."""
    global _generation
    _generation += 1


class Definitions:
    def __init__(self) -> None:
        self._parsed: dict[tuple[str, int], JourneyDef] = {}

    async def get(self, session: AsyncSession, journey_id: str, version: int) -> JourneyDef:
        found = self._parsed.get((journey_id, version))
        if found is None:
            raw = (
                await session.execute(
                    select(JourneyVersion.definition).where(
                        JourneyVersion.journey_id == journey_id, JourneyVersion.version == version
                    )
                )
            ).scalar_one()
            found = self._parsed[(journey_id, version)] = parse(raw)
        return found


@dataclass
class Listening:
    entries: dict[str, list[tuple[str, Entry]]] = field(default_factory=dict)
    goals: set[str] = field(default_factory=set)
    waits: set[str] = field(default_factory=set)

    def cares(self) -> bool:
        return bool(self.entries or self.goals or self.waits)


class Catalog:
    def __init__(self, definitions: Definitions, ttl_seconds: float) -> None:
        self.definitions = definitions
        self.ttl = ttl_seconds
        self._cached: Listening | None = None
        self._loaded_at = 0.0
        self._generation = -1

    async def listening(self, session: AsyncSession) -> Listening:
        fresh = time.monotonic() - self._loaded_at < self.ttl
        if self._cached is not None and fresh and self._generation == _generation:
            return self._cached
        generation = _generation
        out = Listening()
        journeys = (
            await session.execute(
                select(Journey.id, Journey.status, Journey.live_version).where(
                    Journey.status.in_(ACTIVE)
                )
            )
        ).all()
        if journeys:
            versions = (
                await session.execute(
                    select(JourneyVersion.journey_id, JourneyVersion.version).where(
                        JourneyVersion.journey_id.in_([j.id for j in journeys])
                    )
                )
            ).all()
            live = {j.id: j.live_version for j in journeys if j.status == "live"}
            for journey_id, version in versions:
                definition = await self.definitions.get(session, journey_id, version)
                if live.get(journey_id) == version and definition.entry.schedule is None:
                    entry = definition.entry
                    out.entries.setdefault(entry.event, []).append((journey_id, entry))
                if definition.goal is not None:
                    out.goals.add(definition.goal.spec.event)
                out.waits |= definition.events_waited_for()
        self._cached, self._loaded_at, self._generation = out, time.monotonic(), generation
        return out
