"""The CLV refresh on SQLite and PostgreSQL: CDNOW through the orders table, computed traits,
cancelled orders, the schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.analytics import service
from omnicx.app import build_hooks
from omnicx.db import Database
from omnicx.settings import Settings
from tests.analytics.cdnow import CALIBRATION_END, transactions
from tests.analytics.factories import add_orders, at

END = datetime(1997, 9, 30, 23, 59, 59, tzinfo=UTC)


async def traits_of(db: Database, profile_id: str) -> dict[str, object]:
    async with db.session() as session:
        return await service.computed_traits(session, profile_id=profile_id)


async def test_refresh_on_cdnow_orders_reproduces_the_paper(db: Database) -> None:
    rows = [(f"cd{c}", at(d), v) for c, d, v in transactions()]
    await add_orders(db, rows)
    report = await service.refresh_now(db, db.settings, now=END)

    assert report["customers"] == 2357 and report["repeat_customers"] == 946
    bg = report["bg_nbd"]
    assert (round(bg["r"], 3), round(bg["alpha"], 3), round(bg["a"], 3), round(bg["b"], 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    gg = report["gamma_gamma"]
    assert (round(gg["p"], 2), round(gg["q"], 2), round(gg["gamma"], 2)) == (6.25, 3.74, 15.44)

    # The paper's example customer (x=2, t_x=30.43, T=38.86): $74.02 spent by 30 September.
    example = await traits_of(db, "cd0001")
    assert example["clv_historical"] == 74.02
    assert example["orders_count"] == 3
    assert example["p_alive"] == pytest.approx(0.7266, abs=1e-4)
    assert 0 < example["expected_purchases_90d"] < 1.226  # type: ignore[operator]
    assert example["clv_predicted_12m"] > 0  # type: ignore[operator]
    assert example["rfm_segment"] in {"loyal", "potential_loyalist", "champions"}
    assert {"rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_score"} <= set(example)
    # Orders after the calibration end are not counted.
    later = [d for c, d, _ in transactions() if c == "0001" and d > CALIBRATION_END]
    assert later


async def test_cancelled_orders_are_ignored_and_lapsed_customers_lose_clv(db: Database) -> None:
    day = date(2024, 3, 1)
    await add_orders(db, [("p1", at(day), 100.0), ("p1", at(day + timedelta(days=10)), 50.0)])
    await add_orders(db, [("p2", at(day), 80.0)])
    await add_orders(db, [("p1", at(day + timedelta(days=20)), 999.0)], status="cancelled")
    await add_orders(
        db, [("p1", at(day + timedelta(days=30)), 40.0)], status="partially_refunded", refunded=15
    )
    now = at(day + timedelta(days=60))
    await service.refresh_now(db, db.settings, now=now)
    assert (await traits_of(db, "p1"))["clv_historical"] == 175.0  # 100 + 50 + (40 - 15)
    assert (await traits_of(db, "p1"))["orders_count"] == 3

    # p2's only order is cancelled later on: the next refresh removes p2's CLV traits.
    async def cancel(session: AsyncSession) -> None:
        from omnicx.commerce.models import Order

        for order in (
            await session.execute(select(Order).where(Order.profile_id == "p2"))
        ).scalars():
            order.status = "cancelled"

    await db.transaction(cancel)
    await service.refresh_now(db, db.settings, now=now + timedelta(days=1))
    assert "clv_historical" not in await traits_of(db, "p2")
    assert "clv_historical" in await traits_of(db, "p1")


async def test_without_repeat_buyers_only_historical_values_are_written(db: Database) -> None:
    await add_orders(db, [(f"p{i}", at(date(2024, 1, 1 + i)), 10.0 * (i + 1)) for i in range(5)])
    report = await service.refresh_now(db, db.settings, now=at(date(2024, 3, 1)))
    assert report["bg_nbd"] is None and "repeat purchase" in report["note"]
    traits = await traits_of(db, "p4")
    assert traits["clv_historical"] == 50.0 and traits["rfm_monetary"] == 5
    assert "p_alive" not in traits and "clv_predicted_12m" not in traits


async def test_no_orders_at_all_is_an_empty_refresh(db: Database) -> None:
    report = await service.refresh_now(db, db.settings, now=at(date(2024, 3, 1)))
    assert report["customers"] == 0 and report["bg_nbd"] is None


async def test_the_refresh_timer_runs_and_reschedules_itself(db: Database) -> None:
    settings = Settings(database_url=db.settings.database_url, analytics_refresh_hours=6)
    hooks = build_hooks(settings)
    day = date(2024, 5, 1)
    await add_orders(db, [("p1", at(day), 20.0), ("p1", at(day + timedelta(days=3)), 30.0)])
    await add_orders(db, [("p2", at(day), 25.0), ("p3", at(day + timedelta(days=1)), 5.0)])
    now = at(day + timedelta(days=9))

    async def first(session: AsyncSession) -> None:
        await service.schedule_refresh(session, settings=settings, now=now, replace=False)
        # scheduling again while one is pending leaves it where it is
        await service.schedule_refresh(
            session, settings=settings, now=now + timedelta(hours=1), replace=False
        )

    await db.transaction(first)
    async with db.session() as session:
        pending = await timers.pending(session, key=service.REFRESH_TIMER)
    assert pending is not None and pending.due_at == now + timedelta(hours=6)

    assert await timers.run_due(db, hooks, now=now + timedelta(hours=6)) == 1
    assert (await traits_of(db, "p1"))["clv_historical"] == 50.0
    async with db.session() as session:
        pending = await timers.pending(session, key=service.REFRESH_TIMER)
        run = await service.latest_run(session)
    assert pending is not None and pending.due_at == now + timedelta(hours=12)
    assert pending.last_error is None
    assert run is not None and run.report["customers"] == 3
