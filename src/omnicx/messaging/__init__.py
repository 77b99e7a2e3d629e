"""Messaging: templates and brand kit, providers, send-time policies, the delivery log.

:func:`register` hooks it into the app: merges and erasure, and the delivery loop as a worker
job. The job keeps one lane per provider running (:mod:`omnicx.messaging.delivery`); it waits
for any lane to finish a pass (or for the worker's poll interval) and reports how many messages
were handled, so a busy queue drains at full speed while timers and other jobs still run between
passes, and a lane stuck on a slow provider holds up nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime

from omnicx.db import Database
from omnicx.hooks import Hooks
from omnicx.messaging.delivery import PASSES_PER_LANE, Delivery
from omnicx.messaging.engagement import eraser, on_merge
from omnicx.messaging.providers.registry import ProviderContext, build_providers, http_client
from omnicx.settings import Settings

log = logging.getLogger(__name__)
RECOVER_EVERY_SECONDS = 5.0


class Dispatcher:
    """The worker job: builds the providers on first use, then keeps every lane busy with
    :data:`~omnicx.messaging.delivery.PASSES_PER_LANE` passes, so one batch's sends overlap the
    next batch's claim and the previous batch's bookkeeping."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.delivery: Delivery | None = None
        self.passes: dict[asyncio.Task[int], str] = {}
        self.recovered_at = 0.0

    def _start(self, db: Database, hooks: Hooks) -> Delivery:
        ctx = ProviderContext(settings=self.settings, http=http_client(self.settings))
        self.delivery = Delivery(db, self.settings, hooks, build_providers(ctx))
        return self.delivery

    async def __call__(self, db: Database, hooks: Hooks, now: datetime) -> int:
        delivery = self.delivery or self._start(db, hooks)
        loop = asyncio.get_running_loop()
        if loop.time() - self.recovered_at > RECOVER_EVERY_SECONDS:
            self.recovered_at = loop.time()
            await delivery.recover()
        running = Counter(self.passes.values())
        for name in delivery.providers:
            for _ in range(PASSES_PER_LANE - running[name]):
                self.passes[asyncio.create_task(delivery.run_pass(name))] = name
        done, _ = await asyncio.wait(
            self.passes,
            timeout=self.settings.worker_poll_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        handled = 0
        for task in done:
            name = self.passes.pop(task)
            try:
                handled += task.result()
            except Exception:  # the claimed messages stay `sending` until recovered
                log.exception("delivery lane %s failed", name)
        return handled


def register(hooks: Hooks, settings: Settings) -> None:
    """Merges move messages; erasure suppresses addresses and strips messages; the worker
    delivers."""
    hooks.on_merge.append(on_merge)
    hooks.on_erase.append(eraser(settings))
    hooks.jobs.append(Dispatcher(settings))
