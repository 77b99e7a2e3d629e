"""The background loop: runs due timers and the registered jobs until told to stop.

``omnicx worker`` runs it on its own; ``omnicx serve`` runs one inside the API process unless
``OMNICX_EMBEDDED_WORKER=false``. Any number may run against one PostgreSQL: timers are claimed
with ``SKIP LOCKED``, so each runs once. The loop sleeps ``OMNICX_WORKER_POLL_SECONDS`` only
when there was nothing due, so a backlog drains at full speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from omnicx import timers
from omnicx.db import Database, utcnow
from omnicx.hooks import Hooks

log = logging.getLogger(__name__)


async def run(db: Database, hooks: Hooks, stop: asyncio.Event) -> None:
    poll = db.settings.worker_poll_seconds
    log.info("worker started (poll every %.2fs)", poll)
    while not stop.is_set():
        ran = await run_once(db, hooks)
        if ran:
            log.info("worker pass handled %d", ran, extra={"handled": ran})
        if ran == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
    log.info("worker stopped")


async def run_once(db: Database, hooks: Hooks) -> int:
    """One pass: due timers (but those a job pumps), then each job; how many items were
    handled."""
    ran = await timers.run_due(db, hooks, now=utcnow(), exclude=hooks.pumped)
    for job in hooks.jobs:
        ran += await job(db, hooks, utcnow())
    return ran
