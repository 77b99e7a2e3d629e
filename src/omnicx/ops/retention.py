"""Retention: raw events and message bodies are kept only as long as configured.

``OMNICX_RETENTION_EVENTS_DAYS`` deletes raw events whose ``timestamp`` is older;
``OMNICX_RETENTION_MESSAGE_BODIES_DAYS`` blanks the rendered content and template data of
finished messages older than that (0 keeps either forever, the default). What was derived from
them stays: profiles and their traits, identities, consent, orders and carts, computed traits
(CLV, RFM), segment memberships, journey runs and steps, and every message's status, channel
and timestamps, so the delivery reports, order history and segment sizes do not change.

What does change, by design: a profile's timeline and the reports that read raw events (paths,
attribution, experiment exposures, event-window segment conditions on a recompute) only see the
retained window; a resent ``messageId`` older than the window is no longer recognised as a
duplicate. Set the window longer than your longest segment condition and attribution window.

The job runs in the worker (``hooks.jobs``): once an hour per process, and pass after pass
while a backlog remains, ``CHUNK`` rows per transaction (``SKIP LOCKED``: workers share it). It
also forgets rate-limit windows that ended more than an hour ago.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database
from omnicx.hooks import Hooks
from omnicx.messaging.delivery import blank_bodies
from omnicx.ops import ratelimit
from omnicx.profiles.service import prune_events
from omnicx.settings import Settings

CHUNK = 5000
INTERVAL = 3600.0


async def prune(db: Database, settings: Settings, now: datetime) -> int:
    """One chunk of each kind of pruning; how many rows were touched."""

    async def work(session: AsyncSession) -> int:
        done = await ratelimit.prune(session, now=now.timestamp())
        if settings.retention_events_days:
            cutoff = now - timedelta(days=settings.retention_events_days)
            done += await prune_events(session, before=cutoff, limit=CHUNK)
        if settings.retention_message_bodies_days:
            cutoff = now - timedelta(days=settings.retention_message_bodies_days)
            done += await blank_bodies(session, before=cutoff, limit=CHUNK)
        return done

    return await db.transaction(work)


class RetentionJob:
    """The worker job: prune hourly, or again at once while the last pass found a backlog."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.next_at = 0.0

    async def __call__(self, db: Database, _hooks: Hooks, now: datetime) -> int:
        if time.monotonic() < self.next_at:
            return 0
        done = await prune(db, self.settings, now)
        self.next_at = 0.0 if done >= CHUNK else time.monotonic() + INTERVAL
        return done


def register(hooks: Hooks, settings: Settings) -> None:
    hooks.jobs.append(RetentionJob(settings))
