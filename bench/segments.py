"""Segments at scale on PostgreSQL: full recompute, incremental cost, event → entered latency.

The benchmark

1. creates ``omnicx_bench_seg_<random>`` (dropped at the end unless ``--keep``), migrates it and
   fills it with SQL (``INSERT … SELECT`` from ``generate_series``): ``--profiles`` profiles
   (each with a ``user_id`` identity and a few traits), about ``--events`` timeline events
   over the last 120 days (Page Viewed 45 %, Product Viewed 35 %, Product Added 15 %, Order
   Completed 5 %, plus an Order Completed within 50 minutes after 30 % of the Product Added,
   so the abandoned-cart anti-join has work to do; busier people are more likely), ``--orders``
   orders over 18 months (skewed, so some customers are VIPs), email / push / web-push contact
   points and consents, and RFM computed traits for 3 % of profiles (as an analytics refresh
   leaves them); then ``VACUUM ANALYZE``. Secondary indexes of ``events`` are dropped during
   the load and rebuilt after, as a bulk import would;
2. loads the starter segments (``segments.service.put``, as ``omnicx segments load`` does);
3. times each starter segment's set-based query (``engine.members_by_query``, the "all"
   compilation) next to a hand-written query for the same set, interleaved, median of
   ``--repeats``, and checks both return the same profiles;
4. times ``Engine.recompute`` (memberships, ``Segment Entered`` events, recheck timers) from
   empty memberships for each segment in ``--recompute``;
5. ingests one event for each of ``--incremental`` existing profiles through the real write
   path (``profiles.record.record_events``, batches of 100, all projectors) and times
   ``Engine.run_queue`` until the queue is empty (ms per event), next to the raw single-profile
   queries for the same segments (``engine.evaluate``), without locks, writes or timers, and
   counts the statements ``run_queue`` sent, by kind;
6. starts uvicorn (no embedded worker) and a real ``omnicx worker`` polling every 0.25 s, posts
   10 warm-up then ``--latency`` pickup orders (``POST /v1/track``, ``--rate`` per second) for
   profiles that never ordered, and times from each 200 to the ``click-and-collect`` membership
   row (written in the transaction that records ``Segment Entered``), polled every 10 ms.

The load average is printed with each figure: the machine is shared.

Run: ``.venv/bin/python bench/segments.py [--profiles N] [--events N] [--keep] [--explain]``;
``OMNICX_BENCH_POSTGRES_URL`` names the server (default ``postgresql://postgres@127.0.0.1/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import delete, event, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from omnicx import migrate
from omnicx.app import build_hooks
from omnicx.auth.service import SourceKind, create_source
from omnicx.db import Database, utcnow
from omnicx.profiles.models import Profile
from omnicx.profiles.record import IncomingEvent, record_events
from omnicx.segments import service
from omnicx.segments.compiler import Compiler
from omnicx.segments.engine import (
    RECOMPUTE_TIMER,
    Engine,
    Loaded,
    affected,
    evaluate,
    load,
    members_by_query,
)
from omnicx.segments.models import SegmentMembership, SegmentWork
from omnicx.segments.schemas import SegmentCreate
from omnicx.settings import Settings
from omnicx.timers import Timer

POSTGRES_URL = os.environ.get(
    "OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TARGET_RECOMPUTE_S = 5.0
TARGET_INCREMENTAL_MS = 5.0
TARGET_P99_S = 1.0
WARM_UP = 10  # latency events sent first and not counted
BIN = Path(sys.executable).parent

# --- the data ----------------------------------------------------------------------------------
# Profile g has id md5('p' || g) and user id 'u' || g, so Python can name any of them.

MIX = (("Page Viewed", 0.45), ("Product Viewed", 0.80), ("Product Added", 0.95))
CATEGORIES = "ARRAY['Outerwear','Shoes','Knitwear','Bags','Trousers','Shirts','Sport','Kids']"
GENERATE = [
    (
        "profiles",
        """INSERT INTO profiles (id, traits, trait_times, channels, first_seen, last_seen,
               created_at)
           SELECT md5('p' || g),
                  jsonb_build_object('email', 'user' || g || '@example.com',
                      'plan', (ARRAY['free', 'plus', 'gold'])[1 + g % 3],
                      'age', 18 + g % 60, 'country', (ARRAY['FR','DE','US','GB','ES'])[1 + g % 5]),
                  '{}', '{}', :now - interval '400 days' * (g % 997) / 997.0, :now,
                  :now - interval '400 days' * (g % 997) / 997.0
           FROM generate_series(1, :profiles) g""",
    ),
    (
        "identities",
        """INSERT INTO identities (profile_id, type, value, created_at)
           SELECT md5('p' || g), 'user_id', 'u' || g, :now FROM generate_series(1, :profiles) g""",
    ),
    (
        "events",
        f"""INSERT INTO events (source_id, message_id, profile_id, type, event, channel, user_id,
               timestamp, received_at, properties, traits, context)
           SELECT :source, 'gen-' || g, md5('p' || u), 'track', name, 'web', 'u' || u, ts, ts,
                  CASE WHEN name = 'Page Viewed'
                       THEN jsonb_build_object('path', '/c/' || prod % 40, 'title', 'Category',
                            'referrer', 'https://www.google.com/')
                       WHEN name = 'Order Completed'
                       THEN jsonb_build_object('order_id', 'ev-' || g, 'currency', 'EUR',
                            'total', round((20 + (prod % 300))::numeric, 2))
                       ELSE jsonb_build_object('product_id', 'sku-' || prod, 'currency', 'EUR',
                            'category', ({CATEGORIES})[1 + prod % 8],
                            'price', round((5 + (prod % 200) * 1.5)::numeric, 2))
                  END, '{{}}', '{{}}'
           FROM (SELECT g, u, prod, ts,
                        CASE WHEN r < {MIX[0][1]} THEN '{MIX[0][0]}'
                             WHEN r < {MIX[1][1]} THEN '{MIX[1][0]}'
                             WHEN r < {MIX[2][1]} THEN '{MIX[2][0]}'
                             ELSE 'Order Completed' END AS name
                 FROM (SELECT g, random() AS r,
                              1 + floor(CAST(:profiles AS bigint)
                                        * power(random(), 1.6))::bigint AS u,
                              floor(random() * 5000)::int AS prod,
                              :now - random() * interval '120 days' AS ts
                       FROM generate_series(1, :base_events) g) s) t""",
    ),
    (
        "orders after adds",
        """INSERT INTO events (source_id, message_id, profile_id, type, event, channel, user_id,
               timestamp, received_at, properties, traits, context)
           SELECT source_id, 'gen-f-' || id, profile_id, 'track', 'Order Completed', 'web',
                  user_id, ts, ts, jsonb_build_object('order_id', 'evf-' || id, 'currency', 'EUR',
                  'total', properties -> 'price'), '{}', '{}'
           FROM (SELECT e.*, e.timestamp + random() * interval '50 minutes' AS ts
                 FROM events e WHERE e.event = 'Product Added' AND random() < 0.3) a""",
    ),
    (
        "stores",
        """INSERT INTO stores (id, name, address, timezone, opening_hours, hold_days, created_at)
           SELECT 'store-' || g, 'Store ' || g, '', 'Europe/Paris', '{}', 7, :now
           FROM generate_series(1, 20) g""",
    ),
    (
        "orders",
        """INSERT INTO orders (id, profile_id, status, channel, store_id, fulfillment, currency,
               subtotal, total, revenue, refunded, placed_at, updated_at)
           SELECT 'ord-' || g,
                  md5('p' || (1 + floor(CAST(:profiles AS bigint) * power(a, 3))::bigint)),
                  CASE WHEN s < 0.94 THEN 'completed' WHEN s < 0.97 THEN 'partially_refunded'
                       WHEN s < 0.99 THEN 'refunded' ELSE 'cancelled' END,
                  CASE WHEN f < 0.7 THEN 'web' WHEN f < 0.9 THEN 'app' ELSE 'store' END,
                  CASE WHEN f >= 0.7 THEN 'store-' || (1 + g % 20) END,
                  CASE WHEN f < 0.7 THEN 'delivery' WHEN f < 0.9 THEN 'pickup'
                       ELSE 'in_store' END,
                  'EUR', amount, amount, amount,
                  CASE WHEN s >= 0.94 AND s < 0.97 THEN round(amount / 3, 2)
                       WHEN s >= 0.97 AND s < 0.99 THEN amount ELSE 0 END,
                  :now - t * interval '540 days', :now - t * interval '540 days'
           FROM (SELECT g, random() AS a, random() AS s, random() AS f, random() AS t,
                        round((15 + power(random(), 2) * 400)::numeric, 2) AS amount
                 FROM generate_series(1, :orders) g) x""",
    ),
    (
        "contact points",
        """INSERT INTO contact_points (profile_id, kind, value, data, created_at, last_seen)
           SELECT md5('p' || g), kind, value, '{}', :now, :now
           FROM generate_series(1, :profiles) g,
                LATERAL (VALUES ('email', 'user' || g || '@example.com', g % 10 < 8),
                                ('push_token', 'fcm-token-' || md5('t' || g), g % 4 = 0),
                                ('webpush', 'https://push.example.com/s/' || g, g % 10 = 3)
                        ) AS c(kind, value, keep)
           WHERE keep""",
    ),
    (
        "consents",
        """INSERT INTO consents (profile_id, channel, topic, status, source, updated_at)
           SELECT md5('p' || g), channel, topic, status, 'bench', :now
           FROM generate_series(1, :profiles) g,
                LATERAL (VALUES
                    ('push', 'marketing', CASE WHEN (g / 4) % 10 < 7 THEN 'granted'
                                               ELSE 'denied' END, g % 4 = 0),
                    ('webpush', 'marketing', 'granted', g % 10 = 3 AND (g / 10) % 2 = 0),
                    ('email', 'marketing', 'granted', g % 3 = 0),
                    ('all', 'all', 'granted', g % 7 = 0),
                    ('all', 'marketing', 'denied', g % 50 = 1)
                ) AS c(channel, topic, status, keep)
           WHERE keep""",
    ),
    (
        "computed traits",
        """INSERT INTO computed_traits (profile_id, traits, updated_at)
           SELECT md5('p' || g), jsonb_build_object('rfm_segment',
                      (ARRAY['champions','loyal','at_risk','hibernating'])[1 + g % 4]), :now
           FROM generate_series(1, :profiles) g WHERE g % 33 = 5""",
    ),
]

# --- hand-written queries for the starter segments (what an engineer would write) -------------

LIVE = "p.merged_into IS NULL AND p.erased_at IS NULL"
HAND_WRITTEN = {
    "cart-abandoners": f"""
        SELECT DISTINCT x.profile_id FROM events x JOIN profiles p ON p.id = x.profile_id
        WHERE {LIVE} AND x.event = 'Product Added'
          AND x.timestamp >= :now - interval '2 days' AND x.timestamp <= :now - interval '1 hour'
          AND NOT EXISTS (SELECT 1 FROM events y
                          WHERE y.profile_id = x.profile_id AND y.event = 'Order Completed'
                            AND y.timestamp > x.timestamp
                            AND y.timestamp <= x.timestamp + interval '1 hour')""",
    "click-and-collect": f"""
        SELECT p.id FROM profiles p WHERE {LIVE} AND EXISTS (
            SELECT 1 FROM orders o WHERE o.profile_id = p.id AND o.fulfillment = 'pickup'
              AND o.status IN ('completed', 'partially_refunded'))""",
    "lapsed-customers": f"""
        SELECT o.profile_id FROM orders o JOIN profiles p ON p.id = o.profile_id
        WHERE {LIVE} AND o.status IN ('completed', 'partially_refunded')
        GROUP BY o.profile_id HAVING max(o.placed_at) < :now - interval '90 days'""",
    "reachable-by-push": f"""
        SELECT DISTINCT c.profile_id FROM contact_points c JOIN profiles p ON p.id = c.profile_id
        WHERE {LIVE} AND c.kind IN ('push_token', 'webpush')
          AND EXISTS (SELECT 1 FROM consents k WHERE k.profile_id = c.profile_id
                        AND k.channel IN (CASE c.kind WHEN 'push_token' THEN 'push'
                                          ELSE 'webpush' END, 'all')
                        AND k.topic IN ('marketing', 'all') AND k.status = 'granted')
          AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.profile_id = c.profile_id
                        AND k.channel IN (CASE c.kind WHEN 'push_token' THEN 'push'
                                          ELSE 'webpush' END, 'all')
                        AND k.topic IN ('marketing', 'all') AND k.status = 'denied')""",
    # RFM comes from the analytics refresh, which writes the computed_traits table.
    "vips": f"""
        SELECT p.id FROM profiles p WHERE {LIVE} AND (
            p.id IN (SELECT profile_id FROM computed_traits
                     WHERE traits ->> 'rfm_segment' IN ('champions', 'loyal'))
            OR p.id IN (SELECT profile_id FROM orders
                        WHERE status IN ('completed', 'partially_refunded')
                          AND placed_at >= :now - interval '365 days' AND placed_at <= :now
                        GROUP BY profile_id
                        HAVING count(*) >= 5 AND sum(total - refunded) >= 1000))""",
}


def pid_of(g: int) -> str:
    return hashlib.md5(f"p{g}".encode()).hexdigest()


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def sql(statement: str) -> Any:
    """``text()`` with ``:now`` typed, so PostgreSQL can resolve ``:now - interval …``."""
    return text(statement.replace(":now", "CAST(:now AS timestamptz)"))


def starter_segments() -> list[SegmentCreate]:
    folder = resources.files("omnicx.segments") / "starter"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)
    return [SegmentCreate.model_validate(yaml.safe_load(f.read_text("utf-8"))) for f in files]


# --- set-up -----------------------------------------------------------------------------------


async def admin(statement: str) -> None:
    engine = create_async_engine(
        Settings(database_url=POSTGRES_URL).database_url, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def generate(db: Database, args: argparse.Namespace, now: datetime) -> tuple[int, str]:
    source, write_key = await db.transaction(
        lambda session: create_source(session, name="bench-web", kind=SourceKind.web)
    )
    params = {
        "now": now,
        "source": source.id,
        "profiles": args.profiles,
        "orders": args.orders,
        # The follow-up orders add 15 % × 30 % of the base: the total is about --events.
        "base_events": round(args.events / 1.045),
    }
    async with db.engine.connect() as conn:
        await conn.execute(text("SET maintenance_work_mem = '1GB'"))
        await conn.execute(text("SET synchronous_commit = off"))
        # Rebuilding the events indexes after the load is several times faster than keeping
        # them current row by row.
        indexes = (
            await conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' "
                    "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
                )
            )
        ).all()
        constraints = (
            await conn.execute(
                text(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = 'events'::regclass AND contype = 'u'"
                )
            )
        ).all()
        for name, _ in indexes:
            await conn.execute(text(f'DROP INDEX "{name}"'))
        for name, _ in constraints:
            await conn.execute(text(f'ALTER TABLE events DROP CONSTRAINT "{name}"'))
        await conn.commit()
        for label, statement in GENERATE:
            started = time.perf_counter()
            result = await conn.execute(sql(statement), params)
            await conn.commit()
            seconds = time.perf_counter() - started
            print(f"  {label:18} {result.rowcount:>11,} rows  {seconds:7.1f} s", flush=True)
        started = time.perf_counter()
        for _, definition in indexes:
            await conn.execute(text(definition))
        for name, definition in constraints:
            await conn.execute(text(f'ALTER TABLE events ADD CONSTRAINT "{name}" {definition}'))
        await conn.commit()
        print(f"  {'events indexes':18} {'':>16}  {time.perf_counter() - started:7.1f} s")
    started = time.perf_counter()
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    print(f"  {'vacuum analyze':18} {'':>16}  {time.perf_counter() - started:7.1f} s")
    return source.id, write_key


async def load_starters(db: Database) -> list[Loaded]:
    async def work(session: AsyncSession) -> None:
        for item in starter_segments():
            await service.put(session, data=item)
        # Recomputes are timed below, one by one, not left to a worker.
        await session.execute(delete(Timer).where(Timer.kind == RECOMPUTE_TIMER))

    await db.transaction(work)
    async with db.session() as session:
        return await load(session)


# --- 1. full recompute queries ----------------------------------------------------------------


@dataclass
class QueryFigure:
    segment: str
    compiled: float
    hand: float
    members: int
    same: bool
    load: str


async def explain(session: AsyncSession, seg: Loaded, now: datetime) -> str:
    compiler = Compiler("postgresql", now, "all")
    stmt = select(Profile.id).where(
        Profile.merged_into.is_(None), Profile.erased_at.is_(None), compiler.compile(seg.node)
    )
    dialect = session.get_bind().dialect
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    rows = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
    return "\n".join(f"    {line}" for (line,) in rows)


async def measure_queries(
    db: Database, segments: list[Loaded], now: datetime, args: argparse.Namespace
) -> list[QueryFigure]:
    figures = []
    for seg in segments:
        compiled_times, hand_times = [], []
        compiled: list[str] = []
        hand: list[str] = []
        for _ in range(args.repeats):
            async with db.session() as session:
                started = time.perf_counter()
                compiled = await members_by_query(session, seg, now)
                compiled_times.append(time.perf_counter() - started)
            async with db.session() as session:
                started = time.perf_counter()
                result = await session.execute(sql(HAND_WRITTEN[seg.id]), {"now": now})
                hand = list(result.scalars())
                hand_times.append(time.perf_counter() - started)
        figure = QueryFigure(
            seg.id,
            statistics.median(compiled_times),
            statistics.median(hand_times),
            len(compiled),
            set(compiled) == set(hand),
            load_average(),
        )
        figures.append(figure)
        verdict = "same set" if figure.same else f"DIFFERENT: hand-written has {len(set(hand))}"
        print(
            f"  {seg.id:18} {figure.members:>9,} members  compiled {figure.compiled:6.3f} s  "
            f"hand-written {figure.hand:6.3f} s  ratio {figure.compiled / figure.hand:5.2f}  "
            f"{verdict}  (load {figure.load})",
            flush=True,
        )
        if args.explain:
            async with db.session() as session:
                print(await explain(session, seg, now))
    return figures


# --- 2. recompute into memberships ------------------------------------------------------------


async def measure_recompute(
    db: Database, engine: Engine, segments: list[Loaded], wanted: list[str]
) -> list[tuple[str, float, int]]:
    out = []
    for seg in segments:
        if seg.id not in wanted:
            continue
        started = time.perf_counter()
        entered, exited = await engine.recompute(db, seg.id, utcnow())
        seconds = time.perf_counter() - started
        out.append((seg.id, seconds, entered))
        timer_note = "with a recheck timer each" if seg.deps.time else "no timers"
        print(
            f"  {seg.id:18} {entered:>9,} entered {exited} exited  {seconds:7.2f} s  "
            f"({timer_note}; load {load_average()})",
            flush=True,
        )
    return out


# --- 3. incremental evaluation ----------------------------------------------------------------


def incoming(g: int, rng: random.Random, at: datetime) -> IncomingEvent:
    draw = rng.random()
    name = next((n for n, edge in MIX if draw < edge), "Order Completed")
    product = rng.randrange(5000)
    if name == "Page Viewed":
        props: dict[str, Any] = {"path": f"/c/{product % 40}", "title": "Category"}
    elif name == "Order Completed":
        props = {"order_id": f"inc-{uuid.uuid4().hex}", "total": 80.0, "currency": "EUR"}
        props["products"] = [{"product_id": f"sku-{product}", "price": 80.0, "quantity": 1}]
    else:
        props = {"product_id": f"sku-{product}", "price": 19.5, "currency": "EUR"}
    return IncomingEvent(
        message_id=uuid.uuid4().hex,
        type="track",
        event=name,
        user_id=f"u{g}",
        anonymous_id=None,
        timestamp=at,
        properties=props,
    )


STATEMENT_KINDS = (  # (text in the SQL, what run_queue issues it for), first match wins
    ("pg_advisory_xact_lock", "profile lock"),
    ("segment_work", "queue"),
    ("FROM segments", "definitions"),
    ("SELECT CASE WHEN", "evaluate"),
    ("segment_memberships", "membership write"),
    ("timers", "recheck timer"),
    ("INSERT INTO events", "Segment Entered/Exited"),
    ("SELECT min(", "next change"),
    ("SELECT max(", "next change"),
)


def statement_kind(statement: str) -> str:
    return next((kind for needle, kind in STATEMENT_KINDS if needle in statement), "other")


@dataclass
class IncrementalFigure:
    queue_ms: float  # Engine.run_queue, per queued event
    raw_ms: float  # engine.evaluate for the same (profile, segment) pairs, per event
    all_ms: float  # engine.evaluate of all segments in one query, per event
    evaluations: int
    events: int
    statements: Counter[str]  # what run_queue sent to PostgreSQL, by kind
    round_trip_ms: float  # SELECT 1 on the same pool, the floor of any statement


async def measure_incremental(
    db: Database,
    engine: Engine,
    segments: list[Loaded],
    source_id: int,
    people: list[int],
) -> IncrementalFigure:
    hooks = engine.hooks
    while await engine.run_queue(db, hooks, utcnow()):
        pass  # whatever earlier steps queued is not part of the figure
    rng = random.Random(7)
    events = [incoming(g, rng, utcnow() - timedelta(seconds=5)) for g in people]
    for start in range(0, len(events), 100):
        batch = events[start : start + 100]

        async def ingest(session: AsyncSession, batch: list[IncomingEvent] = batch) -> None:
            await record_events(
                session,
                source_id=source_id,
                channel="web",
                events=batch,
                settings=db.settings,
                received_at=utcnow(),
                hooks=hooks,
            )

        await db.transaction(ingest)
    async with db.session() as session:
        queued = list(
            (await session.execute(select(SegmentWork.profile_id, SegmentWork.reasons))).all()
        )
    todo = {pid: affected(segments, reasons) for pid, reasons in queued}

    statements: Counter[str] = Counter()

    def count(*args: Any) -> None:
        statements[statement_kind(args[2])] += 1

    sync_engine = db.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    handled = 0
    started = time.perf_counter()
    while n := await engine.run_queue(db, hooks, utcnow()):
        handled += n
    seconds = time.perf_counter() - started
    event.remove(sync_engine, "before_cursor_execute", count)

    async with db.session() as session:
        started = time.perf_counter()
        for pid, ids in todo.items():
            for seg in segments:
                if seg.id in ids:
                    await evaluate(session, [seg], pid, utcnow())
        raw_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for pid in todo:
            await evaluate(session, segments, pid, utcnow())
        all_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for _ in todo:
            await session.execute(text("SELECT 1"))
        trip_seconds = time.perf_counter() - started
    return IncrementalFigure(
        queue_ms=seconds * 1000 / max(handled, 1),
        raw_ms=raw_seconds * 1000 / len(todo),
        all_ms=all_seconds * 1000 / len(todo),
        evaluations=sum(len(ids) for ids in todo.values()),
        events=len(todo),
        statements=statements,
        round_trip_ms=trip_seconds * 1000 / len(todo),
    )


# --- 4. event → Segment Entered latency -------------------------------------------------------


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def measure_latency(
    db: Database, url: str, write_key: str, people: list[int], rate: float, port: int
) -> list[float | None]:
    """Seconds from each acknowledgement to the membership row, in send order."""
    env = {
        "OMNICX_DATABASE_URL": url,
        "OMNICX_EMBEDDED_WORKER": "false",
        "OMNICX_WORKER_POLL_SECONDS": "0.25",
    }
    server = start(
        [str(BIN / "uvicorn"), "omnicx.app:create_app", "--factory", "--port", str(port)]
        + ["--log-level", "warning"],
        env,
    )
    worker = start([str(BIN / "omnicx"), "worker"], env)
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", auth=(write_key, ""), timeout=30
        ) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # let the worker finish starting

            done = asyncio.Event()
            last_ack = [time.perf_counter()]

            async def watch(done: asyncio.Event) -> None:
                while not done.is_set() or len(seen) < len(acked):
                    pending = [pid for pid in acked if pid not in seen]
                    if pending:
                        async with db.session() as session:
                            rows = await session.execute(
                                select(SegmentMembership.profile_id).where(
                                    SegmentMembership.segment_id == "click-and-collect",
                                    SegmentMembership.active.is_(True),
                                    SegmentMembership.profile_id.in_(pending),
                                )
                            )
                            at = time.perf_counter()
                            for (pid,) in rows:
                                seen[pid] = at
                    if done.is_set() and time.perf_counter() - last_ack[0] > 30:
                        return  # never arrived: reported as missing
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch(done))
            for i, g in enumerate(people):
                body = {
                    "userId": f"u{g}",
                    "event": "Order Completed",
                    "messageId": uuid.uuid4().hex,
                    "properties": {
                        "order_id": f"lat-{uuid.uuid4().hex}",
                        "total": 59.0,
                        "currency": "EUR",
                        "fulfillment": "pickup",
                        "store_id": f"store-{1 + i % 20}",
                        "products": [{"product_id": "sku-7", "price": 59.0, "quantity": 1}],
                    },
                }
                response = await client.post("/v1/track", json=body)
                response.raise_for_status()
                acked[pid_of(g)] = last_ack[0] = time.perf_counter()
                await asyncio.sleep(1 / rate)
            done.set()
            await watcher
    finally:
        stop(server)
        stop(worker)
    missing = len(acked) - len(seen)
    if missing:
        print(f"  {missing} profiles never entered within 30 s")
    # None: never entered. In send order, so a slow start shows as such.
    return [seen[pid] - at if pid in seen else None for pid, at in acked.items()]


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# --- driver -----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    name = f"omnicx_bench_seg_{uuid.uuid4().hex[:8]}"
    base = POSTGRES_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    await admin(f'CREATE DATABASE "{name}"')
    print(f"database {name}; load average {load_average()} on {os.cpu_count()} cores")
    db: Database | None = None
    try:
        settings = Settings(database_url=url)
        await asyncio.to_thread(migrate.upgrade, settings)
        db = Database(settings)
        started = utcnow()
        print(f"generating {args.profiles:,} profiles, ~{args.events:,} events:")
        source_id, write_key = await generate(db, args, started)
        async with db.session() as session:
            total = (await session.execute(text("SELECT count(*) FROM events"))).scalar_one()
        print(f"  {total:,} events in all; load average {load_average()}")
        segments = await load_starters(db)
        engine = Engine(build_hooks(settings))
        at = utcnow()

        print(f"\n1. full recompute query, median of {args.repeats} (target ≤ 5 s):")
        queries = await measure_queries(db, segments, at, args)
        wanted = [s.id for s in segments] if args.recompute == "all" else args.recompute.split(",")
        print("\n2. Engine.recompute into empty memberships:")
        recomputes = await measure_recompute(db, engine, segments, wanted)

        # The people for 3 and 4 are drawn apart; 4 needs people who never ordered.
        rng = random.Random(11)
        incremental_people = rng.sample(range(1, args.profiles + 1), args.incremental)
        async with db.session() as session:
            buyers = set(
                (await session.execute(text("SELECT DISTINCT profile_id FROM orders"))).scalars()
            )
        taken = set(incremental_people)
        latency_people: list[int] = []
        while len(latency_people) < args.latency + WARM_UP:
            g = rng.randrange(1, args.profiles + 1)
            if g not in taken and pid_of(g) not in buyers:
                taken.add(g)
                latency_people.append(g)

        print(
            f"\n3. incremental: one event each for {args.incremental:,} profiles (target ≤ 5 ms):"
        )
        inc = await measure_incremental(db, engine, segments, source_id, incremental_people)
        per_event = ", ".join(
            f"{kind} {n / inc.events:.2f}" for kind, n in inc.statements.most_common()
        )
        print(
            f"  run_queue {inc.queue_ms:.2f} ms per event ({inc.evaluations / inc.events:.2f} "
            f"segment evaluations per event); the same evaluations as raw single-profile "
            f"queries {inc.raw_ms:.2f} ms (ratio {inc.queue_ms / inc.raw_ms:.1f}); all five "
            f"segments in one query {inc.all_ms:.2f} ms (load {load_average()})\n"
            f"  statements per event: {sum(inc.statements.values()) / inc.events:.1f} "
            f"({per_event}); one SELECT 1 round trip {inc.round_trip_ms:.2f} ms"
        )

        print(f"\n4. event → Segment Entered, {args.latency} orders at {args.rate}/s (p99 ≤ 1 s):")
        in_order = await measure_latency(db, url, write_key, latency_people, args.rate, args.port)
        # The first events meet a worker that has just started (cold pools and caches).
        measured = in_order[WARM_UP:]
        latencies = sorted(x for x in measured if x is not None)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        slowest = max(range(len(in_order)), key=lambda i: in_order[i] or 0.0)
        warm = ", ".join(f"{(x or 0) * 1000:.0f}" for x in in_order[:WARM_UP])
        print(
            f"  p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {latencies[-1] * 1000:.0f} ms"
            f"  over {len(latencies)} after {WARM_UP} warm-up events ({warm} ms); slowest was "
            f"#{slowest + 1}; {len(measured) - len(latencies)} never entered; "
            f"{sum(x > TARGET_P99_S for x in latencies)} over 1 s (load {load_average()})"
        )

        print("\nsummary:")
        worst = max(queries, key=lambda f: f.compiled)
        print(
            f"  slowest recompute query {worst.segment} {worst.compiled:.2f} s "
            f"{'ok' if worst.compiled <= TARGET_RECOMPUTE_S else 'MISSED'}; "
            f"worst ratio {max(f.compiled / f.hand for f in queries):.2f}; "
            f"sets differ: {', '.join(f.segment for f in queries if not f.same) or 'none'}"
        )
        for seg_id, seconds, entered in recomputes:
            print(f"  recompute {seg_id}: {seconds:.1f} s for {entered:,} entries")
        print(
            f"  incremental {inc.queue_ms:.2f} ms/event "
            f"{'ok' if inc.queue_ms <= TARGET_INCREMENTAL_MS else 'MISSED'}; "
            f"latency p99 {p99:.3f} s {'ok' if p99 <= TARGET_P99_S else 'MISSED'}"
        )
    finally:
        if db is not None:
            await db.dispose()
        if args.keep:
            print(f"kept {url}")
        else:
            await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--orders", type=int, help="default: 30 %% of --profiles")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each query (median)")
    parser.add_argument(
        "--recompute", default="all", help="segment ids to recompute (comma-separated) or all"
    )
    parser.add_argument("--incremental", type=int, default=2000, help="events for step 3")
    parser.add_argument("--latency", type=int, default=300, help="events for step 4")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second in step 4")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    if args.orders is None:
        args.orders = args.profiles * 3 // 10
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
