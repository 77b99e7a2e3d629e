"""The seed's purchase handoffs end to end: cart, wishlist, login, pickup order, collection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from omnicx import timers
from omnicx.auth.service import Role
from omnicx.db import Database, utcnow
from tests.commerce.factories import move, put_store, send_batch, shopper_journey, track
from tests.conftest import new_token
from tests.helpers import timeline


async def _bearer(db: Database, role: Role, store: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_token(db, role, store_id=store)}"}


async def _get(client: httpx.AsyncClient, headers: dict[str, str], url: str) -> Any:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_journey_from_anonymous_cart_to_collected_pickup(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    await send_batch(client, write_key, shopper_journey("anon-7", "nora", "O-1001", "oslo-1"))
    agent = await _bearer(db, Role.agent)
    associate = await _bearer(db, Role.store_associate, "oslo-1")

    wishlist = await _get(client, agent, "/api/profiles/user_id:nora/wishlist")
    assert [i["product_id"] for i in wishlist["items"]] == ["HIKE-BT"]
    assert await _get(client, agent, "/api/profiles/user_id:nora/cart") is None  # converted
    [order] = (await _get(client, agent, "/api/profiles/email:nora@example.com/orders"))["items"]
    assert order["id"] == "O-1001"
    assert (order["status"], order["channel"], order["fulfillment"]) == (
        "completed",
        "web",
        "pickup",
    )
    assert order["total"] == "224.00" and order["coupon"] == "WELCOME10"
    assert sorted((i["product_id"], i["quantity"]) for i in order["items"]) == [
        ("ALP-JKT", 1),
        ("WOOL-BN", 1),
    ]
    assert order["pickup"]["status"] == "placed"
    products = await _get(client, agent, "/api/products?category=Outerwear")
    assert [(p["id"], p["name"], p["price"]) for p in products] == [
        ("ALP-JKT", "Alpine jacket", "199.00")
    ]

    placed = await _get(client, associate, "/api/stores/oslo-1/pickups?status=placed")
    assert [p["order_id"] for p in placed["items"]] == ["O-1001"]
    assert (await move(client, associate, "O-1001", "picking")).status_code == 200
    ready = await move(client, associate, "O-1001", "ready_for_pickup")
    assert ready.status_code == 200, ready.text
    pickup = ready.json()["pickup"]
    code = pickup["code"]
    assert len(code) == 6 and set(code) <= set("ACDEFGHJKMNPQRTUVWXY34679")
    assert pickup["qr_payload"].startswith(f"OMNICX-PICKUP:O-1001:{code}:")

    events = await timeline(client, agent, "user_id:nora", limit=3)
    assert [e["event"] for e in events[:2]] == ["Pickup Ready", "Pickup Picking Started"]
    assert events[0]["properties"]["pickup_code"] == code
    assert events[0]["properties"]["store_name"] == "Oslo Karl Johan"
    assert events[0]["source"] == "omnicx"

    wrong = await move(client, associate, "O-1001", "collected", code="AAAAAA")
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_pickup_code"
    done = await move(client, associate, "O-1001", "collected", code=code.lower())
    assert done.status_code == 200, done.text
    history = done.json()["pickup"]["transitions"]
    assert [(t["from_status"], t["to_status"]) for t in history] == [
        ("placed", "picking"),
        ("picking", "ready_for_pickup"),
        ("ready_for_pickup", "collected"),
    ]
    assert history[-1]["actor"] == "store_associate:store_associate-test"
    assert (await timeline(client, agent, "user_id:nora", limit=1))[0]["event"] == (
        "Order Collected"
    )


async def test_store_associate_of_another_store_is_refused(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    await put_store(client, admin_headers, "bergen-1", name="Bergen")
    await send_batch(client, write_key, shopper_journey("anon-8", "olav", "O-2002", "oslo-1"))
    elsewhere = await _bearer(db, Role.store_associate, "bergen-1")
    assert (await client.get("/api/orders/O-2002", headers=elsewhere)).status_code == 403
    assert (await client.get("/api/stores/oslo-1/pickups", headers=elsewhere)).status_code == 403
    refused = await move(client, elsewhere, "O-2002", "picking")
    assert refused.status_code == 403
    order = await _get(client, admin_headers, "/api/orders/O-2002")
    assert order["pickup"]["status"] == "placed" and order["pickup"]["transitions"] == []
    marketer = await _bearer(db, Role.marketer)
    assert (await move(client, marketer, "O-2002", "picking")).status_code == 403
    assert (await client.get("/api/orders/O-2002", headers=marketer)).status_code == 200


async def test_override_without_code_is_recorded(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    await send_batch(client, write_key, shopper_journey("anon-9", "pia", "O-3003", "oslo-1"))
    for to in ("picking", "ready_for_pickup"):
        assert (await move(client, admin_headers, "O-3003", to)).status_code == 200
    missing = await move(client, admin_headers, "O-3003", "collected")
    assert missing.json()["error"]["code"] == "pickup_code_required"
    done = await move(
        client, admin_headers, "O-3003", "collected", override_reason="phone died; ID card checked"
    )
    assert done.status_code == 200, done.text
    assert done.json()["pickup"]["transitions"][-1]["reason"] == (
        "code override: phone died; ID card checked"
    )


async def test_partial_collection_then_the_rest(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    await send_batch(client, write_key, shopper_journey("anon-10", "rut", "O-4004", "oslo-1"))
    for to in ("picking", "ready_for_pickup"):
        response = await move(client, admin_headers, "O-4004", to)
    code = response.json()["pickup"]["code"]
    part = await move(
        client,
        admin_headers,
        "O-4004",
        "partially_collected",
        code=code,
        items=[{"product_id": "ALP-JKT", "quantity": 1}],
    )
    assert part.status_code == 200, part.text
    assert part.json()["pickup"]["status"] == "partially_collected"
    collected = {i["product_id"]: i["collected_quantity"] for i in part.json()["items"]}
    assert collected == {"ALP-JKT": 1, "WOOL-BN": 0}
    rest = await move(
        client,
        admin_headers,
        "O-4004",
        "partially_collected",
        code=code,
        items=[{"product_id": "WOOL-BN", "quantity": 1}],
    )
    assert rest.json()["pickup"]["status"] == "collected"  # everything handed over


async def test_hold_expiry_and_reminder_fire_from_timers(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    db: Database,
    app: FastAPI,
) -> None:
    await put_store(client, admin_headers, "oslo-1", hold_days=3)
    await send_batch(client, write_key, shopper_journey("anon-11", "siv", "O-5005", "oslo-1"))
    for to in ("picking", "ready_for_pickup"):
        await move(client, admin_headers, "O-5005", to)
    start = utcnow()
    hooks = app.state.hooks
    await timers.run_due(db, hooks, now=start + timedelta(days=1))
    [ready] = await timeline(client, admin_headers, "user_id:siv", limit=1)
    assert ready["event"] == "Pickup Ready"  # no reminder yet
    await timers.run_due(db, hooks, now=start + timedelta(days=2, hours=1))
    [reminder] = await timeline(client, admin_headers, "user_id:siv", limit=1)
    assert reminder["event"] == "Pickup Reminder"
    assert reminder["properties"]["pickup_code"]
    await timers.run_due(db, hooks, now=start + timedelta(days=3, minutes=1))
    order = (await client.get("/api/orders/O-5005", headers=admin_headers)).json()
    assert order["pickup"]["status"] == "expired"
    assert order["pickup"]["transitions"][-1]["actor"] == "system"
    [expired] = await timeline(client, admin_headers, "user_id:siv", limit=1)
    assert expired["event"] == "Pickup Expired"
    late = await move(client, admin_headers, "O-5005", "collected", code=order["pickup"]["code"])
    assert late.status_code == 409


async def test_cart_abandonment_after_idle_time(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    db: Database,
    app: FastAPI,
) -> None:
    start = utcnow().replace(microsecond=0)
    stamp = (start).isoformat()
    later = (start + timedelta(minutes=30)).isoformat()
    await send_batch(
        client,
        write_key,
        [
            {
                **track("Product Added", {"product_id": "ALP-JKT", "price": 199}, userId="tor"),
                "timestamp": stamp,
            },
            {
                **track("Product Added", {"product_id": "WOOL-BN", "price": 25}, userId="tor"),
                "timestamp": later,
            },
        ],
    )
    hooks = app.state.hooks
    # One hour after the first add, but only 30 minutes after the last one: not yet.
    await timers.run_due(db, hooks, now=start + timedelta(minutes=61))
    assert (await timeline(client, admin_headers, "user_id:tor", limit=1))[0]["event"] == (
        "Product Added"
    )
    await timers.run_due(db, hooks, now=start + timedelta(minutes=91))
    [event] = await timeline(client, admin_headers, "user_id:tor", limit=1)
    assert event["event"] == "Cart Abandoned"
    assert event["properties"]["value"] == 224.0
    assert {p["product_id"] for p in event["properties"]["products"]} == {"ALP-JKT", "WOOL-BN"}
    cart = (await client.get("/api/profiles/user_id:tor/cart", headers=admin_headers)).json()
    assert cart["status"] == "abandoned"
    # Coming back reactivates the cart; an order converts it and no abandonment follows.
    await send_batch(
        client,
        write_key,
        [
            track("Product Added", {"product_id": "HIKE-BT", "price": 149}, userId="tor"),
            track("Order Completed", {"order_id": "O-6006", "total": 373}, userId="tor"),
        ],
    )
    await timers.run_due(db, hooks, now=utcnow() + timedelta(hours=2))
    assert len(await timeline(client, admin_headers, "user_id:tor", event="Cart Abandoned")) == 1
    assert (
        await client.get("/api/profiles/user_id:tor/cart", headers=admin_headers)
    ).json() is None
