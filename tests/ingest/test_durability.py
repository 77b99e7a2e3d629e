"""Crash safety of ingest: SIGKILL the server under load; nothing acknowledged is lost or doubled.

A client sends ``/v1/batch`` requests of 50 events with unique messageIds, retrying each batch
with the same messageIds until it gets a 200 (as the SDKs do). Meanwhile the server is killed at
random moments (after a random number of acknowledged batches, plus a random fraction of a
request) and restarted. Afterwards the database must hold every acknowledged event exactly once,
every batch whole or not at all, and profile activity counts that match the events stored.
The random choices come from one seed, printed on failure; ``OMNICX_TEST_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from omnicx.db import Database
from omnicx.profiles.models import Event, Profile
from tests.conftest import SECRET, new_write_key
from tests.live_server import LiveServer

BATCHES = 60
BATCH_SIZE = 50
KILLS = 3
USERS = 40
ANONYMOUS = 160  # visitors; anonymous id k always logs in as user k % USERS
RESEND_RATE = 0.15
RETRY_DELAY = 0.02
DEADLINE = 300.0  # bounds a broken run (a restart that never answers); nothing asserts on time


@dataclass
class Load:
    """What the client sent, what the server acknowledged, and how often it had to retry."""

    acked: list[str] = field(default_factory=list)
    acked_batches: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    replayed: int = 0  # retries of a batch the server had committed before dying (response lost)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, batches: int) -> None:
        async with self.progress:
            await self.progress.wait_for(lambda: self.acked_batches >= batches)


def make_batch(run: str, number: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(BATCH_SIZE):
        n = number * BATCH_SIZE + i
        visitor, rounds = n % ANONYMOUS, n // ANONYMOUS
        message_id = f"{run}-{number}-{i}"
        if rounds % 4 == 1:  # every visitor logs in now and then, merging into its user
            events.append(
                {
                    "type": "identify",
                    "messageId": message_id,
                    "anonymousId": f"anon-{visitor}",
                    "userId": f"user-{visitor % USERS}",
                    "traits": {"email": f"user-{visitor % USERS}@example.com", "n": n},
                }
            )
        else:
            events.append(
                {
                    "type": "track",
                    "messageId": message_id,
                    "anonymousId": f"anon-{visitor}",
                    "event": "Product Viewed",
                    "properties": {"n": n, "batch": number},
                }
            )
    return events


def schedule(rng: random.Random) -> list[tuple[int, bool]]:
    """Batch numbers in sending order; now and then an acknowledged batch is sent again, as a
    client does when it never saw the response. ``True`` marks those resends."""
    order: list[tuple[int, bool]] = []
    for number in range(BATCHES):
        order.append((number, False))
        if rng.random() < RESEND_RATE:
            order.append((rng.randrange(number + 1), True))
    return order


async def send_all(
    url: str, write_key: str, run: str, order: list[tuple[int, bool]], load: Load
) -> None:
    """Send every batch, each retried with the same messageIds until a 200."""
    async with httpx.AsyncClient(base_url=url, auth=(write_key, ""), timeout=10.0) as client:
        for number, resend in order:
            batch = make_batch(run, number)
            attempt = 0
            while True:
                attempt += 1
                try:
                    response = await client.post("/v1/batch", json={"batch": batch})
                except httpx.TransportError as exc:
                    load.failures[type(exc).__name__] += 1
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                if response.status_code >= 500:
                    load.failures[f"HTTP {response.status_code}"] += 1
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                assert response.status_code == 200, (number, response.status_code, response.text)
                body = response.json()
                assert body["rejected"] == [], body
                assert body["accepted"] + body["duplicates"] == BATCH_SIZE, body
                if resend:
                    assert body == {
                        "success": True,
                        "accepted": 0,
                        "duplicates": BATCH_SIZE,
                        "rejected": [],
                    }, (number, body)
                elif attempt > 1 and body["duplicates"]:
                    load.replayed += 1
                break
            if resend:
                continue
            async with load.progress:
                load.acked.extend(e["messageId"] for e in batch)
                load.acked_batches += 1
                load.progress.notify_all()


async def reached(load: Load, batches: int, sender: asyncio.Task[None]) -> bool:
    """Wait for ``batches`` acknowledged batches; False if the sender ended (or failed) first."""
    waiter = asyncio.create_task(load.wait_for(batches))
    try:
        await asyncio.wait({waiter, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return not sender.done()


def kill_points(rng: random.Random) -> list[int]:
    """Acknowledged-batch counts after which to kill: one at random in each slice of the run."""
    width = (BATCHES - 10) // KILLS
    return [rng.randrange(5 + k * width, 5 + (k + 1) * width) for k in range(KILLS)]


@pytest.mark.slow
async def test_sigkill_under_load_loses_and_doubles_nothing(
    database_url: str, db: Database
) -> None:
    write_key = await new_write_key(db)
    seed = int(os.environ.get("OMNICX_TEST_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    run = f"r{seed}"
    points = kill_points(rng)
    order = schedule(rng)
    load = Load()
    started = time.monotonic()
    kills: list[int] = []  # acknowledged batches at each kill

    with LiveServer(database_url, secret_key=SECRET) as server:
        sender = asyncio.create_task(send_all(server.url, write_key, run, order, load))
        try:
            async with asyncio.timeout(DEADLINE):
                for point in points:
                    if not await reached(load, point, sender):
                        break
                    # Somewhere inside the next request (a 50-event batch takes tens of ms).
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                    kills.append(load.acked_batches)
                    server.kill()
                    # Starting takes most of a second; the client keeps retrying meanwhile.
                    await asyncio.to_thread(server.start)
                await sender
        finally:
            if not sender.done():
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        elapsed = time.monotonic() - started

    context = (
        f"seed={seed} (rerun with OMNICX_TEST_SEED) kills after batches {kills}, "
        f"client saw {dict(load.failures)}, replayed {load.replayed}, took {elapsed:.1f}s"
    )
    assert len(kills) == KILLS, f"the load finished before every kill: {context}"
    assert load.acked_batches == BATCHES, context
    assert len(set(load.acked)) == BATCHES * BATCH_SIZE, context
    # Each kill must have hit the client: otherwise this test proved nothing.
    assert load.failures.total() >= KILLS, context

    async with db.session() as session:
        rows = (
            await session.execute(
                select(Event.message_id, func.count())
                .where(Event.message_id.like(f"{run}-%"))
                .group_by(Event.message_id)
            )
        ).all()
        stored: dict[str, int] = dict(rows)
        profile_of = dict(
            (
                await session.execute(
                    select(Event.message_id, Event.profile_id).where(
                        Event.message_id.like(f"{run}-%")
                    )
                )
            ).all()
        )
        profiles = (await session.execute(select(Profile))).scalars().all()

    doubled = {mid: n for mid, n in stored.items() if n != 1}
    assert not doubled, f"messageIds stored more than once: {doubled} ({context})"
    lost = [mid for mid in load.acked if mid not in stored]
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:5]} ({context})"
    unknown = set(stored) - set(load.acked)
    assert not unknown, f"stored but never sent: {sorted(unknown)[:5]} ({context})"

    # A batch is one transaction: every batch is stored whole (they were all acknowledged).
    per_batch = Counter(mid.rsplit("-", 1)[0] for mid in stored)
    assert set(per_batch.values()) == {BATCH_SIZE}, context

    # Effects beyond the event row were applied exactly once too: every event belongs to a
    # live profile, and the profiles' activity counts add up to the events stored.
    live = {p.id: p for p in profiles if p.merged_into is None and p.erased_at is None}
    orphans = [mid for mid, pid in profile_of.items() if pid not in live]
    assert not orphans, f"events on no live profile: {orphans[:5]} ({context})"
    counted = sum(p.channels.get("web", {}).get("events", 0) for p in live.values())
    assert counted == len(stored), f"profiles count {counted} events, {len(stored)} stored"
    assert len(live) == USERS, f"{len(live)} live profiles for {USERS} users ({context})"
