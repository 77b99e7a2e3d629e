"""Each kind of condition, kept current incrementally and agreeing with preview and recompute,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from omnicx.db import Database, utcnow
from omnicx.segments.engine import Engine
from tests.helpers import message_id
from tests.segments.factories import define, drain, members, profile_id

NOW = utcnow().replace(microsecond=0)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


async def _batch(client: httpx.AsyncClient, write_key: str, events: list[dict[str, Any]]) -> None:
    for e in events:
        e.setdefault("messageId", message_id())
        e.setdefault("type", "track")
    response = await client.post("/v1/batch", json={"batch": events}, auth=(write_key, ""))
    assert response.status_code == 200 and response.json()["rejected"] == [], response.text


async def _check(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    app: FastAPI,
    db: Database,
    segment_id: str,
    definition: dict[str, Any],
    expected_users: set[str],
) -> None:
    await define(client, headers, segment_id, definition)
    now = utcnow()  # the recompute timer of a new segment is due at once
    await drain(db, app.state.hooks, now)
    expected = {await profile_id(client, headers, f"user_id:{u}") for u in expected_users}
    assert await members(client, headers, segment_id) == expected
    preview = await client.post(
        "/api/segments/preview", json={"definition": definition}, headers=headers
    )
    assert preview.json()["count"] == len(expected)
    entered, exited = await Engine(app.state.hooks).recompute(db, segment_id, now)
    assert (entered, exited) == (0, 0)  # the full recompute agrees


async def test_trait_conditions(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    people = {
        "ann": {
            "plan": "gold",
            "age": 41,
            "tags": ["hiker", "vip"],
            "vip": True,
            "last_login": ago(days=2),
        },
        "bo": {
            "plan": "silver",
            "age": "41",
            "tags": "hiker",
            "vip": False,
            "last_login": ago(days=40),
        },
        "cy": {"plan": None, "age": 17},
        "di": {},
    }
    await _batch(
        client,
        write_key,
        [{"type": "identify", "userId": u, "traits": t} for u, t in people.items()],
    )
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"trait": "plan", "op": "equals", "value": "gold"}, {"ann"}),
        ({"trait": "plan", "op": "not_equals", "value": "gold"}, {"bo", "cy", "di"}),
        ({"trait": "plan", "op": "in", "value": ["gold", "silver"]}, {"ann", "bo"}),
        ({"trait": "plan", "op": "exists"}, {"ann", "bo"}),
        ({"trait": "plan", "op": "not_exists"}, {"cy", "di"}),
        ({"trait": "age", "op": "gte", "value": 18}, {"ann"}),  # "41" is text, not a number
        ({"trait": "age", "op": "lt", "value": 18}, {"cy"}),
        ({"trait": "age", "op": "equals", "value": 41}, {"ann"}),
        ({"trait": "tags", "op": "contains", "value": "hiker"}, {"ann", "bo"}),
        ({"trait": "vip", "op": "equals", "value": True}, {"ann"}),
        ({"trait": "vip", "op": "equals", "value": False}, {"bo"}),
        ({"trait": "last_login", "op": "within_last_days", "value": 7}, {"ann"}),
        ({"trait": "last_login", "op": "more_than_days_ago", "value": 30}, {"bo"}),
        ({"trait": "last_login", "op": "after", "value": ago(days=10)}, {"ann"}),
        (
            {
                "not": {
                    "or": [
                        {"trait": "plan", "op": "equals", "value": "gold"},
                        {"trait": "age", "op": "lt", "value": 18},
                    ]
                }
            },
            {"bo", "di"},
        ),
    ]
    for n, (definition, expected) in enumerate(cases):
        await _check(client, admin_headers, app, db, f"t{n}", definition, expected)


async def test_event_conditions(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    viewed = "Product Viewed"
    await _batch(
        client,
        write_key,
        [
            *[
                {
                    "userId": "ann",
                    "event": viewed,
                    "properties": {"category": "Outerwear", "price": 199},
                    "timestamp": ago(days=d),
                }
                for d in (1, 2, 3)
            ],
            {
                "userId": "bo",
                "event": viewed,
                "properties": {"category": "Shoes", "price": 90},
                "timestamp": ago(days=1),
            },
            {
                "userId": "cy",
                "event": viewed,
                "properties": {"category": "Outerwear"},
                "timestamp": ago(days=20),
            },
            {"userId": "di", "event": "Signed Up", "timestamp": ago(days=1)},
        ],
    )
    outer = [{"property": "category", "op": "equals", "value": "Outerwear"}]
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"event": viewed}, {"ann", "bo", "cy"}),
        ({"event": viewed, "within": "7d"}, {"ann", "bo"}),
        ({"event": viewed, "where": outer}, {"ann", "cy"}),
        ({"event": viewed, "count": {"gte": 3}}, {"ann"}),
        ({"event": viewed, "count": {"eq": 1}, "within": "7d"}, {"bo"}),
        ({"event": viewed, "count": {"lte": 1}, "within": "7d"}, {"bo", "cy", "di"}),
        ({"event": viewed, "count": {"eq": 0}}, {"di"}),
        ({"event": viewed, "where": [{"property": "price", "op": "gt", "value": 100}]}, {"ann"}),
    ]
    for n, (definition, expected) in enumerate(cases):
        await _check(client, admin_headers, app, db, f"e{n}", definition, expected)


async def test_did_x_and_not_y_within_z(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    await _batch(
        client,
        write_key,
        [
            {"userId": "ann", "event": "Product Added", "timestamp": ago(hours=3)},
            {"userId": "bo", "event": "Product Added", "timestamp": ago(hours=3)},
            {"userId": "bo", "event": "Order Completed", "timestamp": ago(hours=2, minutes=30)},
            {
                "userId": "cy",
                "event": "Product Added",
                "timestamp": ago(minutes=20),
            },  # still deciding
            {"userId": "di", "event": "Product Added", "timestamp": ago(days=3)},  # too old
            {"userId": "eve", "event": "Product Added", "timestamp": ago(hours=5)},
            {"userId": "eve", "event": "Order Completed", "timestamp": ago(hours=3)},  # too late
        ],
    )
    await _check(
        client,
        admin_headers,
        app,
        db,
        "abandoners",
        {
            "event": "Product Added",
            "within": "2d",
            "not_followed_by": {"event": "Order Completed", "within": "1h"},
        },
        {"ann", "eve"},
    )


async def test_commerce_reachability_and_membership(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    order = "Order Completed"
    await _batch(
        client,
        write_key,
        [
            {
                "userId": "ann",
                "event": order,
                "timestamp": ago(days=10),
                "properties": {
                    "order_id": "A1",
                    "total": 800,
                    "fulfillment": "pickup",
                    "store_id": "oslo-1",
                    "products": [{"product_id": "JKT", "category": "Outerwear", "price": 800}],
                },
            },
            {
                "userId": "ann",
                "event": order,
                "timestamp": ago(days=200),
                "properties": {"order_id": "A2", "total": 300},
            },
            {
                "userId": "bo",
                "event": order,
                "timestamp": ago(days=120),
                "properties": {"order_id": "B1", "total": 50},
            },
            {
                "userId": "cy",
                "event": "Product Added",
                "properties": {"product_id": "HAT", "price": 20},
            },
            {
                "userId": "cy",
                "event": "Product Added to Wishlist",
                "properties": {"product_id": "JKT"},
            },
            {
                "type": "identify",
                "userId": "di",
                "traits": {"email": "di@example.com"},
                "context": {"consent": {"email": {"marketing": True}}},
            },
            {
                "type": "identify",
                "userId": "eve",
                "traits": {"email": "eve@example.com"},
                "context": {
                    "consent": {"email": True, "categoryPreferences": {"marketing": False}}
                },
            },
            {"type": "identify", "userId": "fay", "context": {"consent": {"email": True}}},
        ],
    )
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"commerce": "total_spent", "op": "gte", "value": 1000}, {"ann"}),
        ({"commerce": "total_spent", "op": "gte", "value": 500, "within": "30d"}, {"ann"}),
        ({"commerce": "total_spent", "op": "lt", "value": 100}, {"bo", "cy", "di", "eve", "fay"}),
        ({"commerce": "order_count", "op": "gte", "value": 1, "fulfillment": "pickup"}, {"ann"}),
        ({"commerce": "last_order", "op": "more_than_days_ago", "value": 90}, {"bo"}),
        ({"commerce": "last_order", "op": "within_last_days", "value": 30}, {"ann"}),
        ({"commerce": "cart_has", "product_id": "HAT"}, {"cy"}),
        ({"commerce": "cart_has"}, {"cy"}),
        ({"commerce": "wishlist_has", "product_id": "JKT"}, {"cy"}),
        ({"commerce": "bought", "category": "Outerwear"}, {"ann"}),
        ({"reachable": "email", "topic": "marketing"}, {"di"}),
        ({"reachable": "email", "topic": "receipts"}, {"eve"}),
        ({"reachable": "sms", "topic": "marketing"}, set()),
    ]
    for n, (definition, expected) in enumerate(cases):
        await _check(client, admin_headers, app, db, f"c{n}", definition, expected)
    await _check(
        client,
        admin_headers,
        app,
        db,
        "big",
        {"commerce": "total_spent", "op": "gte", "value": 1000},
        {"ann"},
    )
    await _check(
        client,
        admin_headers,
        app,
        db,
        "big-and-reachable",
        {"or": [{"segment": "big"}, {"reachable": "email", "topic": "marketing"}]},
        {"ann", "di"},
    )
