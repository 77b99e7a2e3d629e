"""CLV refresh time on PostgreSQL: 1,000,000 customers with 5,000,000 orders (target <= 60 s).

The benchmark

1. creates ``omnicx_bench_<random>`` on the PostgreSQL server, migrates it (dropped at the end);
2. generates the orders with one ``INSERT … SELECT generate_series`` (every customer has a first
   order in 2023-2024; the other orders go to customers drawn with a skew, so a few buy often
   and most once or twice), then ``ANALYZE``;
3. runs :func:`omnicx.analytics.service.refresh_now` twice: first into an empty
   ``computed_traits`` (every row inserted), then again (every row updated), and prints each
   phase's seconds;
4. as the baseline, times the bare aggregation ``SELECT profile_id, count(*), sum(total) FROM
   orders GROUP BY profile_id`` fetched to the client: the least any refresh must do. The
   ratio says how much the models, the RFM scores and the write-back add to it.

Run: ``.venv/bin/python bench/analytics.py [--customers N] [--orders N]``;
``OMNICX_BENCH_POSTGRES_URL`` names the server (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from omnicx import migrate
from omnicx.analytics import service
from omnicx.db import Database
from omnicx.settings import Settings

SERVER = os.environ.get(
    "OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TARGET_SECONDS = 60.0

GENERATE = """
INSERT INTO orders (id, profile_id, status, channel, fulfillment, currency, total, refunded,
                    placed_at, updated_at)
SELECT 'O' || g,
       'p' || c,
       CASE WHEN g % 50 = 0 THEN 'cancelled' ELSE 'completed' END,
       'web', 'delivery', 'EUR',
       round((10 + random() * 190)::numeric, 2), 0,
       at, at
FROM (
    SELECT g,
           CASE WHEN g <= $1 THEN g ELSE 1 + floor($1 * power(random(), 2))::bigint END AS c,
           timestamptz '2023-01-01' + random() * interval '730 days' AS at
    FROM generate_series(1, $2::bigint) AS g
) AS s
"""


async def main(customers: int, orders: int) -> None:
    name = f"omnicx_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER.rsplit('/', 1)[0]}/{name}"
    settings = Settings(database_url=url, env="test")
    db: Database | None = None
    try:
        await asyncio.to_thread(migrate.upgrade, settings)
        conn = await asyncpg.connect(url)
        started = time.perf_counter()
        await conn.execute(GENERATE, customers, orders)
        await conn.execute("ANALYZE orders")
        print(
            f"generated {orders:,} orders for {customers:,} customers "
            f"in {time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        await conn.fetch(
            "SELECT profile_id, count(*), sum(total) FROM orders "
            "WHERE status NOT IN ('cancelled', 'refunded') GROUP BY profile_id"
        )
        baseline = time.perf_counter() - started
        await conn.close()

        db = Database(settings)
        now = datetime(2025, 1, 1, tzinfo=UTC)
        for label in ("first refresh (inserts)", "second refresh (updates)"):
            started = time.perf_counter()
            report = await service.refresh_now(db, settings, now=now)
            elapsed = time.perf_counter() - started
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in report["seconds"].items())
            print(
                f"{label}: {elapsed:.1f} s ({phases}); {report['customers']:,} customers, "
                f"fitted on {report['fitted_on']:,}"
            )
            print(
                f"  target {TARGET_SECONDS:.0f} s: {elapsed / TARGET_SECONDS:.2f}x the target; "
                f"baseline aggregation {baseline:.1f} s: {elapsed / baseline:.1f}x the baseline"
            )
        bg = report["bg_nbd"]
        print("  BG/NBD " + ", ".join(f"{k}={v:.4g}" for k, v in bg.items()))
    finally:
        if db is not None:
            await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.orders))
