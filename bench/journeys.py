"""Journeys at scale on PostgreSQL: customers through a journey with a wait and a send.

The benchmark

1. creates ``omnicx_bench_journeys_<random>`` (dropped at the end unless ``--keep``), migrates
   it, and creates an in-app template and the journey ``bench``: entry ``Bench Started``, wait
   ``--wait`` seconds, send the in-app message (transactional, so no consent is needed);
2. ingests one ``Bench Started`` event for each of ``--customers`` new customers through the
   real write path (``profiles.record.record_events``, batches of 1,000, every projector: the
   journey projector schedules one enter timer per customer);
3. **throughput**: starts ``--workers`` worker processes, each looping ``worker.run_once``
   with the wall clock (what ``omnicx worker`` does: ``timers.run_due`` and the journey engine's
   pump; without the delivery loop and the other jobs, so the figure is the engine's; the
   messages stay queued), and times (a) the entries (each executes the wait node: one step)
   until every run waits, then (b) the wake-ups (resolve the wait, execute the send node through
   ``messaging.batch.submit_many``: one more step, then the run completes);
   steps/s per worker = steps ÷ seconds ÷ workers. Phase (b) starts when its first timer is due;
4. **lateness** under a sustainable load: ``--paced`` more customers enter at ``--rate`` per
   second (default: half of the measured wake-up capacity) while the workers run; each one's
   lateness is the time from the end of its wait to the commit of its send (the timeline's
   ``received_at`` of the send step, stamped just before the commit), p50 and p99;
5. **baseline**, measured first in the same run with the same workers: ``--baseline`` timers of a
   kind whose handler does nothing, i.e. what the timers table and ``run_due`` cost by themselves.

The load average is printed with each figure: the machine is shared. A server with
autovacuum off (as a test machine may be) gets a ``VACUUM (ANALYZE)`` of the churned tables
every ``--vacuum`` seconds from the benchmark, standing in for it.

Run: ``.venv/bin/python bench/journeys.py [--customers N] [--workers W] [--keep]``;
``OMNICX_BENCH_POSTGRES_URL`` names the server (default ``postgresql://postgres@127.0.0.1/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import heap, migrate, timers, worker
from omnicx.app import build_hooks
from omnicx.auth.service import SourceKind, create_source
from omnicx.db import Database, utcnow
from omnicx.journeys import catalog, service
from omnicx.journeys.engine import Engine
from omnicx.journeys.models import JourneyRun, JourneyStep
from omnicx.journeys.schemas import JourneyCreate
from omnicx.messaging.models import MessageTemplate
from omnicx.profiles.record import IncomingEvent, record_events
from omnicx.settings import Settings

SERVER = os.environ.get("OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres")
NOOP = "bench.noop"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, env="test", db_pool_size=5)


def worker_main(url: str, ready: Any, go: Any, stop: Any) -> None:
    """One worker process: due timers, as fast as they come (``omnicx worker``'s loop and poll
    interval, timers only), from ``go`` until ``stop``."""

    async def main() -> None:
        settings = settings_for(url)
        db = Database(settings)
        hooks = build_hooks(settings)

        async def noop(_session: AsyncSession, _payload: dict[str, Any], _now: datetime) -> None:
            return None

        hooks.timer(NOOP, noop)
        heap.settle()  # as `omnicx worker` does
        await timers.run_due(db, hooks, now=datetime(2000, 1, 1, tzinfo=UTC))  # connect, warm
        ready.put(os.getpid())
        while not go.is_set():
            await asyncio.sleep(0.01)
        # The journey engine's job (its pump) runs; the delivery loop and segments' queue do not.
        hooks.jobs = [j for j in hooks.jobs if isinstance(getattr(j, "__self__", None), Engine)]
        try:
            while not stop.is_set():
                if await worker.run_once(db, hooks) == 0:
                    await asyncio.sleep(settings.worker_poll_seconds)
        finally:
            await db.dispose()

    asyncio.run(main())


class Workers:
    def __init__(self, url: str, count: int) -> None:
        context = mp.get_context("spawn")
        self.go, self.stop, self.ready = context.Event(), context.Event(), context.Queue()
        self.processes = [
            context.Process(target=worker_main, args=(url, self.ready, self.go, self.stop))
            for _ in range(count)
        ]

    def __enter__(self) -> Workers:
        for p in self.processes:
            p.start()
        for _ in self.processes:  # imports and connections, before the clock starts
            self.ready.get(timeout=120)
        self.go.set()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for p in self.processes:
            p.join(30)


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.session() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def wait_until(db: Database, sql: str, target: int, **params: Any) -> float:
    """Poll until ``sql`` counts ``target``; returns the monotonic time it did."""
    while True:
        if await scalar(db, sql, **params) >= target:
            return time.monotonic()
        await asyncio.sleep(0.2)


async def setup(db: Database, wait_seconds: int) -> int:
    async def work(session: AsyncSession) -> int:
        session.add(
            MessageTemplate(
                name="bench-hello",
                description="",
                category="transactional",
                topic="transactional",
                variants={"inapp": {"title": "Hello {{ profile.first_name }}", "body": "Hi"}},
                version=1,
            )
        )
        await session.flush()
        definition = {
            "entry": {"event": "Bench Started"},
            "nodes": [
                {"id": "wait", "type": "wait", "duration": f"{wait_seconds}s"},
                {"id": "hello", "type": "send", "message": "bench-hello", "channel": "inapp"},
            ],
        }
        now = utcnow()
        data = JourneyCreate(id="bench", name="Bench", definition=definition)
        journey = await service.create(session, data=data, now=now)
        await service.publish(session, journey=journey, migrate={}, by="bench", now=now)
        source, _key = await create_source(session, name="bench", kind=SourceKind.server)
        return int(source.id)

    source_id: int = await db.transaction(work)
    catalog.changed()
    return source_id


async def ingest(
    db: Database, hooks: Any, source_id: int, prefix: str, start: int, count: int
) -> None:
    """Entry events for customers ``prefix-start`` … through the real write path."""
    for first in range(start, start + count, 1000):
        now = utcnow()
        events = [
            IncomingEvent(
                message_id=f"{prefix}-{i}",
                type="track",
                event="Bench Started",
                user_id=f"{prefix}-{i}",
                anonymous_id=None,
                timestamp=now,
                context={"traits": {"first_name": f"C{i}"}},
            )
            for i in range(first, min(first + 1000, start + count))
        ]

        async def work(session: AsyncSession, events: list[IncomingEvent] = events) -> None:
            await record_events(
                session,
                source_id=source_id,
                channel="server",
                events=events,
                settings=db.settings,
                received_at=utcnow(),
                hooks=hooks,
            )

        await db.transaction(work)


async def paced(db: Database, hooks: Any, source_id: int, count: int, rate: float) -> None:
    """``count`` customers entering at ``rate`` per second, in small batches."""
    per_tick = max(1, round(rate / 10))
    started = time.monotonic()
    sent = 0
    while sent < count:
        n = min(per_tick, count - sent)
        await ingest(db, hooks, source_id, "paced", sent, n)
        sent += n
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))


async def lateness(db: Database, prefix: str) -> list[float]:
    """Seconds from each paced customer's wait end to the commit of their send."""
    async with db.session() as session:
        rows = await session.execute(
            text(
                """
                SELECT EXTRACT(EPOCH FROM e.received_at - r.wait_end)
                FROM (
                    SELECT s.run_id, (s.detail->>'until')::timestamptz AS wait_end
                    FROM journey_steps s WHERE s.node = 'wait'
                ) r
                JOIN journey_runs jr ON jr.id = r.run_id
                JOIN identities i ON i.profile_id = jr.profile_id AND i.type = 'user_id'
                JOIN events e ON e.source_id = (SELECT id FROM sources WHERE name = 'omnicx')
                    AND e.message_id = 'journey:' || r.run_id || chr(58) || '2'
                WHERE i.value LIKE :prefix
                """
            ),
            {"prefix": f"{prefix}-%"},
        )
        return sorted(float(x) for (x,) in rows)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def baseline(db: Database, url: str, count: int, workers: int) -> float:
    async def work(session: AsyncSession) -> None:
        await session.execute(
            text(
                "INSERT INTO timers (kind, key, due_at, payload, attempts) "
                "SELECT :kind, 'noop:' || g, now(), '{}'::jsonb, 0 FROM generate_series(1, :n) g"
            ),
            {"kind": NOOP, "n": count},
        )

    await db.transaction(work)
    started = time.monotonic()
    with Workers(url, workers):
        done = await wait_until(
            db, "SELECT :n - count(*) FROM timers WHERE kind = :kind", count, n=count, kind=NOOP
        )
    return count / (done - started) / workers


HOT_TABLES = "timers, journey_runs, journey_steps, events, messages, profiles, identities"


async def vacuum_every(url: str, seconds: float) -> None:
    """What autovacuum does for the tables this load churns, for a server that has it off:
    without it the timers' claims step over every dead row and the planner, with no statistics,
    reads whole tables for lookups that have an index."""
    conn = await asyncpg.connect(url)
    try:
        while True:
            await asyncio.sleep(seconds)
            await conn.execute(f"VACUUM (ANALYZE) {HOT_TABLES}")
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    name = f"omnicx_bench_journeys_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    autovacuum = await admin.fetchval("SHOW autovacuum")
    await admin.close()
    url = f"{SERVER.rsplit('/', 1)[0]}/{name}"
    db = Database(settings_for(url))
    maintenance: asyncio.Task[None] | None = None
    if autovacuum != "on":
        print(f"autovacuum is off on this server: VACUUM (ANALYZE) every {args.vacuum:.0f}s")
        maintenance = asyncio.create_task(vacuum_every(url, args.vacuum))
    try:
        await asyncio.to_thread(migrate.upgrade, settings_for(url))
        source_id = await setup(db, args.wait)
        n, w = args.customers, args.workers
        noop_rate = await baseline(db, url, args.baseline, w)
        print(f"baseline: no-op timers {noop_rate:.0f}/s per worker ({load()})")
        hooks = build_hooks(db.settings)
        t = time.monotonic()
        await ingest(db, hooks, source_id, "c", 0, n)
        print(f"ingested {n} entry events in {time.monotonic() - t:.1f}s ({load()})")

        with Workers(url, w):
            t0 = time.monotonic()
            entered = await wait_until(
                db, "SELECT count(*) FROM journey_runs WHERE status IN ('waiting', 'completed')", n
            )
            enter_rate = n / (entered - t0) / w
            print(
                f"entries: {n} wait steps in {entered - t0:.1f}s = {enter_rate:.0f} steps/s "
                f"per worker ({load()})"
            )
            first_due = await scalar(db, "SELECT min(wait_until) FROM journey_runs")
            delay = max(0.0, (first_due - utcnow()).total_seconds())
            await asyncio.sleep(delay)
            t1 = time.monotonic()
            done = await wait_until(
                db, "SELECT count(*) FROM journey_runs WHERE status = 'completed'", n
            )
            wake_rate = n / (done - t1) / w
            print(
                f"wake-ups: {n} send steps in {done - t1:.1f}s = {wake_rate:.0f} steps/s "
                f"per worker ({load()})"
            )
            steps = await scalar(db, "SELECT count(*) FROM journey_steps")
            total_rate = steps / ((entered - t0) + (done - t1)) / w
            print(f"overall: {steps} steps = {total_rate:.0f} steps/s per worker")

            rate = args.rate or max(1.0, wake_rate * w / 2)
            t2 = time.monotonic()
            await paced(db, hooks, source_id, args.paced, rate)
            await wait_until(
                db, "SELECT count(*) FROM journey_runs WHERE status = 'completed'", n + args.paced
            )
            async with db.session() as session:  # fresh statistics for the join below
                await session.execute(text("COMMIT"))
                await session.execute(text("ANALYZE"))
            late = await lateness(db, "paced")
            p50, p99 = pct(late, 0.5) * 1000, pct(late, 0.99) * 1000
            print(
                f"paced: {args.paced} customers at {rate:.0f}/s over {time.monotonic() - t2:.0f}s: "
                f"lateness p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
                f"max {late[-1] * 1000 if late else float('nan'):.0f} ms ({load()})"
            )
            backlog = await lateness(db, "c")
            print(
                f"(the {n} entered at once, a backlog: lateness p50 {pct(backlog, 0.5):.0f} s, "
                f"p99 {pct(backlog, 0.99):.0f} s)"
            )

        print(
            f"ratio: entry steps {enter_rate / noop_rate:.2f}, send steps "
            f"{wake_rate / noop_rate:.2f}, overall {total_rate / noop_rate:.2f} of a no-op timer"
        )
        async with db.session() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(JourneyRun.status, func.count()).group_by(JourneyRun.status)
                    )
                ).all()
            )
            per_run = (
                await session.execute(select(func.count()).select_from(JourneyStep))
            ).scalar_one()
        print(f"runs {statuses}, steps {per_run}")
    finally:
        if maintenance is not None:
            maintenance.cancel()
        await db.dispose()
        if not args.keep:
            admin = await asyncpg.connect(SERVER)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--wait", type=int, default=5, help="seconds of the journey's wait")
    parser.add_argument("--paced", type=int, default=2000, help="customers for lateness")
    parser.add_argument("--rate", type=float, default=0.0, help="paced entries per second")
    parser.add_argument("--baseline", type=int, default=20_000, help="no-op timers")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--vacuum", type=float, default=15.0, help="seconds between VACUUM if autovacuum is off"
    )
    asyncio.run(main(parser.parse_args()))
