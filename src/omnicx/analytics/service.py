"""The CLV refresh: orders → per-customer summary → BG/NBD + Gamma-Gamma → computed traits.

Choices where the issue is silent:

- An order counts when its status is not ``cancelled`` or ``refunded`` and it was placed by a
  known profile up to the refresh time; its value is ``total − refunded``. Purchase days are UTC
  days; several orders on one day are one transaction (as the BG/NBD paper counts them).
- Model time is in weeks; the observation period of every customer ends at the refresh.
- ``clv_historical`` is margin × net revenue to date; ``clv_predicted_12m`` the discounted
  expected value of the next 12 months (see :mod:`omnicx.analytics.clv`);
  ``expected_purchases_90d`` the expected purchase days in the next 90 days.
- Models are fitted on at most ``analytics_fit_sample`` customers (a fixed random sample: the
  estimates barely move beyond that) and applied to all. When they cannot be fitted (nobody
  bought twice yet), only historical CLV and RFM are written and the run's note says why.
- Traits go to ``computed_traits`` with a merge (other computed keys, e.g. last NPS, stay);
  customers whose every order was cancelled since lose their CLV keys.
- A refresh runs in one transaction: readers see the old traits or the new ones, never a mix.
  Scheduled, it runs as the durable timer ``analytics.refresh`` inside the worker's timer
  transaction, so timers claimed in the same batch wait for it (up to a minute for a million
  customers on PostgreSQL); on SQLite it holds the write lock meanwhile. It writes only
  ``computed_traits``, never ``profiles``, so on PostgreSQL ingest waits for it only when a
  survey answer or a merge touches a row it is rewriting.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.analytics import clv, rfm
from omnicx.analytics.models import AnalyticsRun, ComputedTraits
from omnicx.db import Database, UTCDateTime, dialect_insert, utcnow
from omnicx.hooks import ALL_PROFILES, Hooks
from omnicx.settings import Settings

REFRESH_TIMER = "analytics.refresh"
CLV_KEYS = (
    "clv_historical",
    "clv_predicted_12m",
    "p_alive",
    "expected_purchases_90d",
    "orders_count",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_score",
    "rfm_segment",
    "clv_computed_at",
)
VALID_ORDER = "status NOT IN ('cancelled', 'refunded')"
_DAY = {
    "postgresql": "((placed_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')",
    "sqlite": "CAST(julianday(substr(placed_at, 1, 10)) - 2440587.5 AS INTEGER)",
}
_CUSTOMERS_SQL = """
WITH d AS (
    SELECT profile_id, {day} AS day, SUM(CAST(total - refunded AS DOUBLE PRECISION)) AS value,
           COUNT(*) AS n
    FROM orders
    WHERE profile_id IS NOT NULL AND placed_at <= :now AND {valid}
    GROUP BY profile_id, {day}
), f AS (
    SELECT d.*, MIN(day) OVER (PARTITION BY profile_id) AS first FROM d
)
SELECT profile_id, MIN(day), MAX(day), COUNT(*), SUM(value),
       SUM(CASE WHEN day = first THEN value ELSE 0 END), CAST(SUM(n) AS INTEGER)
FROM f GROUP BY profile_id
"""


@dataclass(slots=True)
class Customers:
    """Columns of per-customer order facts; days are UTC day numbers since 1970-01-01."""

    ids: list[str]
    first_day: np.ndarray
    last_day: np.ndarray
    days: np.ndarray
    revenue: np.ndarray
    first_value: np.ndarray
    orders: np.ndarray


@dataclass(slots=True)
class Computation:
    ids: list[str]
    columns: dict[str, list[Any]]
    report: dict[str, Any] = field(default_factory=dict)


async def load_customers(session: AsyncSession, *, now: datetime) -> Customers:
    dialect = session.get_bind().dialect.name
    sql = _CUSTOMERS_SQL.format(day=_DAY[dialect], valid=VALID_ORDER)
    rows: Sequence[Sequence[Any]]
    if dialect == "postgresql":
        # Straight through asyncpg: a million rows cost seconds less than through the ORM's
        # result processing; the memory lets the two aggregations hash without spilling.
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
        driver = await _driver(session)
        rows = await driver.fetch(sql.replace(":now", "$1"), now)
    else:
        stmt = text(sql).bindparams(bindparam("now", type_=UTCDateTime()))
        rows = (await session.execute(stmt, {"now": now})).all()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    f8 = np.float64
    return Customers(
        ids=list(cols[0]),
        first_day=np.array(cols[1], dtype=f8),
        last_day=np.array(cols[2], dtype=f8),
        days=np.array(cols[3], dtype=f8),
        revenue=np.array(cols[4], dtype=f8),
        first_value=np.array(cols[5], dtype=f8),
        orders=np.array(cols[6], dtype=f8),
    )


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's, in its transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    finite = np.isfinite(values)
    out: list[float | None] = np.round(values, digits).tolist()
    if not finite.all():  # an overflow in the model for an extreme customer: no value
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return out


@np.errstate(all="ignore")  # extreme customers overflow to inf/nan: written as no value
def compute(customers: Customers, *, settings: Settings, now: datetime) -> Computation:
    """Fit the models and compute every customer's traits (pure; runs in a worker thread)."""
    n = len(customers.ids)
    today = (now - datetime(1970, 1, 1, tzinfo=now.tzinfo)).days
    report: dict[str, Any] = {"computed_at": now.isoformat(), "customers": n}
    margin = settings.analytics_margin
    x = customers.days - 1
    t_x = (customers.last_day - customers.first_day) / 7
    T = (today - customers.first_day) / 7
    m = np.where(x > 0, (customers.revenue - customers.first_value) / np.maximum(x, 1), 0.0)
    report["repeat_customers"] = int((x > 0).sum())
    recency = rfm.quintile_scores(customers.last_day)
    frequency = rfm.quintile_scores(customers.orders)
    monetary = rfm.quintile_scores(customers.revenue)
    columns: dict[str, list[Any]] = {
        "clv_historical": _rounded(margin * customers.revenue, 2),
        "orders_count": [int(v) for v in customers.orders.tolist()],
        "rfm_recency": recency.tolist(),
        "rfm_frequency": frequency.tolist(),
        "rfm_monetary": monetary.tolist(),
        "rfm_score": [
            f"{r}{f}{mo}"
            for r, f, mo in zip(
                recency.tolist(), frequency.tolist(), monetary.tolist(), strict=True
            )
        ],
        "rfm_segment": rfm.segments(recency, frequency),
    }
    report["segments"] = dict(Counter(columns["rfm_segment"]).most_common())
    none: list[Any] = [None] * n
    columns.update(clv_predicted_12m=none, p_alive=none, expected_purchases_90d=none)
    report["bg_nbd"] = report["gamma_gamma"] = None
    if n:
        sample = np.arange(n)
        if n > settings.analytics_fit_sample:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(n, settings.analytics_fit_sample, replace=False))
        report["fitted_on"] = int(sample.size)
        try:
            bg = clv.fit_bg_nbd(x[sample], t_x[sample], T[sample])
            report["bg_nbd"] = bg.as_dict()
            columns["p_alive"] = _rounded(clv.p_alive(bg, x, t_x, T), 4)
            columns["expected_purchases_90d"] = _rounded(
                clv.expected_purchases(bg, 90 / 7, x, t_x, T), 4
            )
            gg = clv.fit_gamma_gamma(x[sample], np.maximum(m[sample], 0))
            report["gamma_gamma"] = gg.as_dict()
            spend = clv.expected_spend(gg, x, np.maximum(m, 0))
            value = clv.predicted_clv(
                bg,
                spend,
                x,
                t_x,
                T,
                months=12,
                annual_discount=settings.analytics_discount_rate,
                period_days=7,
                margin=margin,
            )
            columns["clv_predicted_12m"] = _rounded(value, 2)
        except clv.FitError as exc:
            report["note"] = f"predictive CLV not computed: {exc}"
    columns["clv_computed_at"] = [now.isoformat()] * n
    return Computation(customers.ids, columns, report)


async def write_traits(session: AsyncSession, computation: Computation, *, now: datetime) -> None:
    """Merge the computed CLV keys into each customer's computed traits; drop stale ones."""
    if session.get_bind().dialect.name == "postgresql":
        await _write_postgres(session, computation, now)
    else:
        await _write_sqlite(session, computation, now)
    # Customers still holding CLV keys that this run did not compute (their orders were all
    # cancelled or refunded since) lose them.
    stmt = text(
        f"UPDATE computed_traits SET traits = {remove_keys_sql(session, 'traits')}, "
        f"updated_at = :now WHERE updated_at < :now AND {has_key_sql(session, 'traits')}"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    await session.execute(stmt, {"now": now})


def remove_keys_sql(session: AsyncSession, column: str, keys: tuple[str, ...] = CLV_KEYS) -> str:
    if session.get_bind().dialect.name == "postgresql":
        return f"({column} - ARRAY[{', '.join(repr(k) for k in keys)}]::text[])"
    return f"json_remove({column}, {', '.join(repr('$.' + k) for k in keys)})"


def has_key_sql(session: AsyncSession, column: str, key: str = "clv_computed_at") -> str:
    if session.get_bind().dialect.name == "postgresql":
        return f"{column} ? '{key}'"
    return f"json_extract({column}, '$.{key}') IS NOT NULL"


async def _write_sqlite(session: AsyncSession, computation: Computation, now: datetime) -> None:
    names = list(computation.columns)
    rows = []
    for i, profile_id in enumerate(computation.ids):
        traits = {k: computation.columns[k][i] for k in names}
        rows.append(
            {
                "profile_id": profile_id,
                "traits": {k: v for k, v in traits.items() if v is not None},
                "updated_at": now,
            }
        )
    stmt = dialect_insert(session, ComputedTraits)
    stmt = stmt.on_conflict_do_update(
        index_elements=["profile_id"],
        set_={
            "traits": text(
                f"json_patch({remove_keys_sql(session, 'computed_traits.traits')}, excluded.traits)"
            ),
            "updated_at": stmt.excluded.updated_at,
        },
    )
    for start in range(0, len(rows), 5000):
        await session.execute(stmt, rows[start : start + 5000])


_PG_TYPES = {
    "clv_historical": "float8",
    "clv_predicted_12m": "float8",
    "p_alive": "float8",
    "expected_purchases_90d": "float8",
    "orders_count": "int8",
    "rfm_recency": "int8",
    "rfm_frequency": "int8",
    "rfm_monetary": "int8",
    "rfm_score": "text",
    "rfm_segment": "text",
    "clv_computed_at": "text",
}


async def _write_postgres(session: AsyncSession, computation: Computation, now: datetime) -> None:
    # COPY into a temporary table and build the JSON in the database: a million rows take
    # seconds this way, against minutes of parameterised upserts.
    driver = await _driver(session)
    names = list(computation.columns)
    typed = ", ".join(f"{k} {_PG_TYPES[k]}" for k in names)
    await driver.execute(f"CREATE TEMP TABLE clv_refresh (profile_id text, {typed}) ON COMMIT DROP")
    records = zip(computation.ids, *(computation.columns[k] for k in names), strict=True)
    await driver.copy_records_to_table(
        "clv_refresh", records=records, columns=["profile_id", *names]
    )
    build = ", ".join(f"'{k}', {k}" for k in names)
    await driver.execute(
        "INSERT INTO computed_traits (profile_id, traits, updated_at) "
        f"SELECT profile_id, jsonb_strip_nulls(jsonb_build_object({build})), $1 FROM clv_refresh "
        "ON CONFLICT (profile_id) DO UPDATE SET "
        f"traits = {remove_keys_sql(session, 'computed_traits.traits')} || excluded.traits, "
        "updated_at = excluded.updated_at",
        now,
    )
    await driver.execute("DROP TABLE clv_refresh")


async def refresh(session: AsyncSession, *, settings: Settings, now: datetime) -> dict[str, Any]:
    """Recompute every customer's CLV traits within ``session``'s transaction."""
    started = time.perf_counter()
    customers = await load_customers(session, now=now)
    loaded = time.perf_counter()
    computation = await asyncio.to_thread(compute, customers, settings=settings, now=now)
    computed = time.perf_counter()
    await write_traits(session, computation, now=now)
    written = time.perf_counter()
    report = computation.report
    report["seconds"] = {
        "load": round(loaded - started, 3),
        "fit_and_predict": round(computed - loaded, 3),
        "write": round(written - computed, 3),
        "total": round(written - started, 3),
    }
    session.add(AnalyticsRun(kind="clv", started_at=now, finished_at=utcnow(), report=report))
    return report


async def schedule_refresh(
    session: AsyncSession, *, settings: Settings, now: datetime, replace: bool
) -> None:
    """Put the next scheduled refresh on the timer table (``replace``: move it if there)."""
    if settings.analytics_refresh_hours <= 0:
        return
    due = now + timedelta(hours=settings.analytics_refresh_hours)
    if replace:
        await timers.schedule(
            session, kind=REFRESH_TIMER, key=REFRESH_TIMER, due_at=due, payload={}
        )
        return
    stmt = dialect_insert(session, timers.Timer).values(
        kind=REFRESH_TIMER, key=REFRESH_TIMER, due_at=due, payload={}, attempts=0
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))


async def refresh_now(
    db: Database, settings: Settings, *, now: datetime | None = None, hooks: Hooks | None = None
) -> dict[str, Any]:
    """Refresh at once (CLI), and schedule the next one; ``hooks`` hear that every profile's
    computed traits may have changed (segments built on them are recomputed)."""
    when = now or utcnow()

    async def work(session: AsyncSession) -> dict[str, Any]:
        report = await refresh(session, settings=settings, now=when)
        await schedule_refresh(session, settings=settings, now=when, replace=True)
        if hooks is not None:
            await hooks.changed(session, {ALL_PROFILES: {"computed": True}})
        return report

    return await db.transaction(work)


async def latest_run(session: AsyncSession) -> AnalyticsRun | None:
    stmt = select(AnalyticsRun).order_by(AnalyticsRun.started_at.desc()).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def computed_traits(session: AsyncSession, *, profile_id: str) -> dict[str, Any]:
    """The profile's computed traits (empty when none were computed yet)."""
    row = await session.get(ComputedTraits, profile_id)
    return dict(row.traits) if row else {}


async def patch_traits(
    session: AsyncSession, *, profile_id: str, traits: dict[str, Any], now: datetime
) -> None:
    """Merge ``traits`` into one profile's computed traits (keys not given stay)."""
    stmt = dialect_insert(session, ComputedTraits).values(
        profile_id=profile_id, traits=traits, updated_at=now
    )
    merged = (
        "computed_traits.traits || excluded.traits"
        if session.get_bind().dialect.name == "postgresql"
        else "json_patch(computed_traits.traits, excluded.traits)"
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["profile_id"], set_={"traits": text(merged), "updated_at": now}
    )
    await session.execute(stmt)
