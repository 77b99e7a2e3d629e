"""Churn and cohort retention from orders, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import httpx

from omnicx.analytics import retention
from omnicx.auth.service import Role
from omnicx.db import Database
from tests.analytics.factories import add_orders, at
from tests.conftest import new_token
from tests.helpers import profile, send_ok

# "Now" is 15 May 2024: May is running, June has not started.
NOW = datetime(2024, 5, 15, 12, tzinfo=UTC)
START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)


async def shop(db: Database) -> None:
    """a: Jan, Feb, Mar; b: Jan, Mar; c: Feb; d: Mar (+ a cancelled Apr order); e: May."""
    await add_orders(
        db,
        [
            ("a", at(date(2024, 1, 5)), 10),
            ("a", at(date(2024, 2, 5)), 10),
            ("a", at(date(2024, 3, 5)), 10),
            ("b", at(date(2024, 1, 20)), 10),
            ("b", at(date(2024, 3, 20)), 10),
            ("c", at(date(2024, 2, 11)), 10),
            ("d", at(date(2024, 3, 30)), 10),
            ("e", at(date(2024, 5, 2)), 10),
        ],
    )
    await add_orders(db, [("d", at(date(2024, 4, 3)), 10)], status="cancelled")


async def test_churn_per_month(db: Database) -> None:
    await shop(db)
    async with db.session() as session:
        rows = await retention.churn(session, period="month", start=START, end=END, now=NOW)
    by = {r["period"]: r for r in rows}
    assert [r["period"] for r in rows] == [f"2024-0{m}" for m in range(1, 7)]
    # January: nobody bought in December, so there is no base and no rate (not 0 %).
    assert by["2024-01"]["customers_at_start"] == 0 and by["2024-01"]["churn_rate"] is None
    assert by["2024-01"]["new"] == 2
    # February: a and b were active in January; a came back, b did not: 1 of 2 lost.
    assert (by["2024-02"]["retained"], by["2024-02"]["lost"]) == (1, 1)
    assert by["2024-02"]["churn_rate"] == 0.5
    # March: a, c active in February; c lost.
    assert by["2024-03"]["churn_rate"] == 0.5 and by["2024-03"]["active"] == 3
    # April: everyone from March lost (d's April order was cancelled).
    assert by["2024-04"]["churn_rate"] == 1.0
    # May is running: counts so far, no rate yet. June has not started: empty.
    assert by["2024-05"]["status"] == "in_progress" and by["2024-05"]["churn_rate"] is None
    assert by["2024-05"]["active"] == 1
    assert by["2024-06"]["status"] == "not_started"
    assert by["2024-06"]["active"] is None and by["2024-06"]["churn_rate"] is None


async def test_cohort_retention_leaves_unreached_periods_empty(db: Database) -> None:
    await shop(db)
    async with db.session() as session:
        rows = await retention.cohorts(
            session, period="month", start=START, end=END, now=NOW, periods=4
        )
    by = {r["cohort"]: r for r in rows}
    assert [r["cohort"] for r in rows] == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert by["2024-01"]["size"] == 2
    assert by["2024-01"]["retention"] == [1.0, 0.5, 1.0, 0.0]
    assert by["2024-02"]["retention"] == [1.0, 0.0, 0.0, 0.0]
    assert by["2024-03"]["retention"] == [1.0, 0.0, 0.0, None]  # June not reached
    assert by["2024-04"]["size"] == 0 and by["2024-04"]["retention"] == [None] * 4
    assert by["2024-05"]["active"] == [1, None, None, None]


async def test_no_orders_gives_empty_tables(db: Database) -> None:
    async with db.session() as session:
        churn = await retention.churn(session, period="week", start=START, end=END, now=NOW)
        cohorts = await retention.cohorts(session, period="week", start=START, end=END, now=NOW)
    assert all(r["churn_rate"] is None for r in churn)
    assert all(r["size"] == 0 for r in cohorts)
    assert churn[0]["period"] == "2024-01-01"  # a Monday


async def test_api_retention_csv_and_refusals(client: httpx.AsyncClient, db: Database) -> None:
    await add_orders(db, [("a", datetime(2024, 1, 5, tzinfo=UTC), 10)])
    headers = {"Authorization": f"Bearer {await new_token(db, Role.marketer)}"}
    params: dict[str, str | int] = {
        "start": "2024-01-01",
        "end": "2024-03-01",
        "periods": 3,
        "format": "csv",
    }
    response = await client.get("/api/analytics/retention", params=params, headers=headers)
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0] == "cohort,size,active_0,active_1,active_2,retention_0,retention_1,retention_2"
    assert lines[1] == "2024-01,1,1,0,0,1.0,0.0,0.0"
    churn = await client.get(
        "/api/analytics/churn", params={"start": "2024-01-01", "end": "2024-03-01"}, headers=headers
    )
    assert [r["period"] for r in churn.json()["rows"]] == ["2024-01", "2024-02"]
    bad = await client.get("/api/analytics/churn", params={"period": "year"}, headers=headers)
    assert bad.status_code == 422
    agent = {"Authorization": f"Bearer {await new_token(db, Role.agent)}"}
    assert (await client.get("/api/analytics/churn", headers=agent)).status_code == 403


async def test_first_seen_cohorts_count_orders_of_people_first_seen_that_month(
    client: httpx.AsyncClient, db: Database, write_key: str, admin_headers: dict[str, str]
) -> None:
    for user, seen in (("v1", "2024-01-03T10:00:00Z"), ("v2", "2024-01-20T10:00:00Z")):
        await send_ok(client, write_key, "page", userId=user, name="Home", timestamp=seen)
    await send_ok(
        client, write_key, "page", userId="v3", name="Home", timestamp="2024-02-02T10:00:00Z"
    )
    v1 = (await profile(client, admin_headers, "user_id:v1"))["id"]
    await add_orders(db, [(v1, at(date(2024, 2, 14)), 10)])
    async with db.session() as session:
        rows = await retention.cohorts(
            session, period="month", start=START, end=END, now=NOW, cohort="first_seen", periods=3
        )
    by = {r["cohort"]: r for r in rows}
    assert by["2024-01"]["size"] == 2 and by["2024-01"]["retention"] == [0.0, 0.5, 0.0]
    assert by["2024-02"]["size"] == 1 and by["2024-02"]["retention"] == [0.0, 0.0, 0.0]
