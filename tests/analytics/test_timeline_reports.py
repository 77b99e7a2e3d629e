"""Experiments, attribution, paths and journey funnels read from real timelines (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnicx.analytics import stats
from omnicx.auth.service import Role
from omnicx.db import Database
from tests.conftest import new_token
from tests.helpers import send_ok

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


def ts(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def event(user: str, name: str, days: float, **props: Any) -> dict[str, Any]:
    return {"userId": user, "event": name, "properties": props, "timestamp": ts(days)}


def viewed(user: str, variation: str, days: float = 0) -> dict[str, Any]:
    return event(user, "Experiment Viewed", days, experiment_id="exp-1", variation_id=variation)


def order(user: str, order_id: str, total: float, days: float) -> dict[str, Any]:
    return event(user, "Order Completed", days, order_id=order_id, total=total, currency="EUR")


async def send_all(client: httpx.AsyncClient, key: str, events: list[dict[str, Any]]) -> None:
    for body in events:
        await send_ok(client, key, "track", **body)


async def headers(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_token(db, Role.analyst)}"}


async def test_experiment_variants_conversions_revenue_and_uplift(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    await send_all(
        client,
        write_key,
        [
            *(viewed(u, "control") for u in ("c1", "c2", "c3", "c4")),
            *(viewed(u, "treatment", 0.5) for u in ("t1", "t2", "t3")),
            viewed("m1", "control"),
            viewed("m1", "treatment", 1),  # seen in both: left out
            viewed("c1", "control", 3),  # a second exposure does not count twice
            order("c1", "O-c1", 100, 2),
            order("c2", "O-c2", 80, 20),  # after the 14-day window
            order("c3", "O-c3", 30, -1),  # before the exposure
            order("t1", "O-t1", 50, 1),
            order("t2", "O-t2", 70, 13),
            order("m1", "O-m1", 99, 2),
        ],
    )
    response = await client.get("/api/analytics/experiments/exp-1", headers=await headers(db))
    assert response.status_code == 200, response.text
    body = response.json()
    control, treatment = body["rows"]
    assert (control["variation"], control["exposures"], control["conversions"]) == (
        "control",
        4,
        1,
    )
    assert (treatment["exposures"], treatment["conversions"]) == (3, 2)
    assert (control["revenue_per_customer"], treatment["revenue_per_customer"]) == (25.0, 40.0)
    assert body["summary"]["multiple_exposures"] == 1 and body["summary"]["warnings"]
    expected = stats.compare(stats.Moments.proportion(4, 1), stats.Moments.proportion(3, 2))
    assert treatment["conversion"]["uplift"] == pytest.approx(expected.uplift)
    assert treatment["conversion"]["p_value"] == pytest.approx(expected.p_value)
    revenue = stats.compare(
        stats.Moments.sample(4, 100.0, 100.0**2), stats.Moments.sample(3, 120.0, 50.0**2 + 70**2)
    )
    assert treatment["revenue_per_customer_uplift"]["uplift"] == pytest.approx(revenue.uplift)
    assert treatment["revenue_per_customer_uplift"]["ci"] == pytest.approx(list(revenue.ci or ()))

    # A chosen event and window; and an experiment nobody saw.
    other = await client.get(
        "/api/analytics/experiments/exp-1",
        params={"metric": "Order Completed", "window_days": 30, "sequential": "true"},
        headers=await headers(db),
    )
    assert other.json()["rows"][0]["conversions"] == 2
    assert other.json()["rows"][1]["conversion"]["sequential"] is True
    nobody = await client.get("/api/analytics/experiments/none", headers=await headers(db))
    assert nobody.json()["rows"] == [] and nobody.json()["summary"]["srm_p_value"] == 1.0


async def test_adhoc_abtest_endpoint(client: httpx.AsyncClient, db: Database) -> None:
    body = {
        "control": {"exposures": 1000, "conversions": 100},
        "treatment": {"exposures": 1000, "conversions": 130},
    }
    result = await client.post("/api/analytics/abtest", json=body, headers=await headers(db))
    assert result.status_code == 200
    assert result.json()["uplift"] == pytest.approx(0.3) and result.json()["warnings"] == []
    body["treatment"] = {"exposures": 10, "conversions": 11}
    refused = await client.post("/api/analytics/abtest", json=body, headers=await headers(db))
    assert refused.status_code == 422


async def test_attribution_models_and_paths(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    await send_all(
        client,
        write_key,
        [
            event("a", "Product Viewed", -3),
            event("a", "Message Clicked", -2, channel="email", journey_id="j-winback"),
            event("a", "Message Opened", -1, channel="push"),
            event("a", "Message Opened", -0.5, channel="push"),
            order("a", "O-a", 100, 0),
            order("b", "O-b", 40, 0),
            event("c", "Message Sent", -10, channel="sms"),  # outside the 7-day window
            event("c", "Product Viewed", -0.2),
            order("c", "O-c", 60, 0),
            event("d", "Message Clicked", -1, channel="email"),
            event("d", "Cart Abandoned", 0, cart_id="k1"),
        ],
    )
    h = await headers(db)
    window = {"start": ts(-1), "end": ts(1)}

    async def rows(**params: Any) -> list[dict[str, Any]]:
        response = await client.get(
            "/api/analytics/attribution", params={**window, **params}, headers=h
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()["rows"]
        return result

    last = await rows(model="last")
    assert last == [
        {"channel": "(none)", "orders": 2.0, "revenue": 100.0},
        {"channel": "push", "orders": 1.0, "revenue": 100.0},
    ]
    first = {r["channel"]: r["revenue"] for r in await rows(model="first")}
    assert first == {"email": 100.0, "(none)": 100.0}
    position = {r["channel"]: r["revenue"] for r in await rows(model="position")}
    assert position == {"email": 40.0, "push": 60.0, "(none)": 100.0}  # 40 / 20 + 40
    journeys = {r["journey_id"]: r["revenue"] for r in await rows(model="first", by="journey")}
    assert journeys == {"j-winback": 100.0, "(none)": 100.0}

    paths = await client.get("/api/analytics/paths", params={**window, "steps": 3}, headers=h)
    body = paths.json()
    assert body["summary"] == {"anchors": 3, "without_prior_events": 1}
    assert {tuple(r["path"]): r["count"] for r in body["rows"]} == {
        ("web:Product Viewed", "email:Message Clicked", "push:Message Opened"): 1,
        ("web:Product Viewed",): 1,
    }
    abandoned = await client.get(
        "/api/analytics/paths", params={**window, "before": "abandonment"}, headers=h
    )
    assert abandoned.json()["rows"] == [
        {"path": ["email:Message Clicked"], "count": 1, "share": 1.0}
    ]


async def test_journey_funnel_drop_off(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    steps = {"entry": ["u1", "u2", "u3", "u4"], "email": ["u1", "u2", "u3"], "goal": ["u1"]}
    events = [
        event(u, "Journey Step", i + n / 10, journey_id="j1", node=node)
        for i, (node, users) in enumerate(steps.items())
        for n, u in enumerate(users)
    ]
    events.append(event("u9", "Journey Step", 0, journey_id="j2", node="entry"))
    await send_all(client, write_key, events)
    response = await client.get(
        "/api/analytics/journeys/j1/funnel",
        params={"start": ts(-1), "end": ts(5)},
        headers=await headers(db),
    )
    rows = response.json()["rows"]
    assert [(r["node_id"], r["customers"], r["drop_off"]) for r in rows] == [
        ("entry", 4, None),
        ("email", 3, 0.25),
        ("goal", 1, 0.6667),
    ]
