"""Events OmniCX itself observes (``Cart Abandoned``, ``Pickup Ready``, ``Segment Entered``…),
added to a profile's timeline once per ``message_id`` and shown to the projectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import internal_source
from omnicx.db import dialect_insert, utcnow
from omnicx.hooks import Hooks, StoredEvent
from omnicx.profiles.models import Event, Profile
from omnicx.profiles.record import chunks

INTERNAL_SOURCE = "omnicx"
INTERNAL_CHANNEL = "system"


async def record_internal(
    session: AsyncSession,
    *,
    profile_id: str,
    event: str,
    message_id: str,
    timestamp: datetime,
    properties: dict[str, Any],
    hooks: Hooks,
) -> bool:
    """Add an event OmniCX itself observed (``Cart Abandoned``, ``Pickup Ready``…) to a
    profile's timeline, once per ``message_id``, and let the projectors see it.

    It does not count as the person's activity (no ``last_seen``, no channel). Returns whether
    it was stored (``False``: already there, or the person was erased)."""
    row = (
        await session.execute(
            select(Profile.merged_into, Profile.erased_at).where(Profile.id == profile_id)
        )
    ).one_or_none()
    while row is not None and row.merged_into is not None:
        profile_id = row.merged_into
        row = (
            await session.execute(
                select(Profile.merged_into, Profile.erased_at).where(Profile.id == profile_id)
            )
        ).one_or_none()
    if row is None or row.erased_at is not None:
        return False
    event_ = InternalEvent(profile_id, event, message_id, timestamp, properties)
    return await record_internal_many(session, [event_], hooks=hooks) == 1


@dataclass(frozen=True, slots=True)
class InternalEvent:
    profile_id: str
    event: str
    message_id: str
    timestamp: datetime
    properties: dict[str, Any]


async def record_internal_many(
    session: AsyncSession, events: Sequence[InternalEvent], *, hooks: Hooks
) -> int:
    """:func:`record_internal` for many events at once, for profile ids the caller knows are
    live (e.g. a segment's members); returns how many were new."""
    if not events:
        return 0
    source = await internal_source(session, name=INTERNAL_SOURCE)
    now = utcnow()
    stmt = (
        dialect_insert(session, Event)
        .on_conflict_do_nothing(index_elements=["source_id", "message_id"])
        .returning(Event.message_id)
        .execution_options(dml_strategy="raw")
    )
    stored: set[str] = set()
    for part in chunks(events, 500):
        rows = [
            {
                "source_id": source.id,
                "message_id": e.message_id,
                "profile_id": e.profile_id,
                "type": "track",
                "event": e.event,
                "channel": INTERNAL_CHANNEL,
                "user_id": None,
                "anonymous_id": None,
                "timestamp": e.timestamp,
                "received_at": now,
                "sent_at": None,
                "original_timestamp": None,
                "properties": e.properties,
                "traits": {},
                "context": {},
            }
            for e in part
        ]
        stored.update((await session.execute(stmt, rows)).scalars())
    await hooks.project(
        session,
        [
            StoredEvent(
                id=None,
                profile_id=e.profile_id,
                source_id=source.id,
                message_id=e.message_id,
                type="track",
                event=e.event,
                channel=INTERNAL_CHANNEL,
                timestamp=e.timestamp,
                properties=e.properties,
                context={},
            )
            for e in events
            if e.message_id in stored
        ],
    )
    return len(stored)
