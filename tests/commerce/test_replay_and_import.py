"""Resent events and re-imported files change nothing; history follows merges and erasure."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from omnicx.commerce.models import Cart, Order, WishlistItem
from omnicx.db import Database, utcnow
from tests.cli import omnicx
from tests.commerce.factories import JACKET, put_store, send_batch, shopper_journey, track
from tests.conftest import new_write_key
from tests.helpers import row_counts
from tests.live_server import LiveServer


async def _state(client: httpx.AsyncClient, headers: dict[str, str], who: str) -> list[Any]:
    return [
        (await client.get(f"/api/profiles/{who}/{part}", headers=headers)).json()
        for part in ("orders", "cart", "wishlist")
    ]


async def test_resending_the_journey_changes_nothing(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    journey = shopper_journey("anon-r", "rita", "O-7007", "oslo-1")
    first = await send_batch(client, write_key, journey)
    assert first["accepted"] == len(journey)
    before, counts = await _state(client, admin_headers, "user_id:rita"), await row_counts(db)
    again = await send_batch(client, write_key, journey)
    assert (again["accepted"], again["duplicates"]) == (0, len(journey))
    assert await _state(client, admin_headers, "user_id:rita") == before
    assert await row_counts(db) == counts


async def test_anonymous_cart_and_wishlist_follow_the_login_merge(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await send_batch(
        client,
        write_key,
        [
            track("Order Completed", {"order_id": "OLD-1", "total": 50}, userId="kari"),
            track("Product Added to Wishlist", {"product_id": "ALP-JKT"}, userId="kari"),
        ],
    )
    await send_batch(
        client,
        write_key,
        [
            track("Product Added", {**JACKET, "quantity": 1}, anonymousId="kari-phone"),
            track("Product Added to Wishlist", {"product_id": "ALP-JKT"}, anonymousId="kari-phone"),
            track("Product Added to Wishlist", {"product_id": "HIKE-BT"}, anonymousId="kari-phone"),
        ],
    )
    await send_batch(
        client,
        write_key,
        [{"type": "identify", "userId": "kari", "anonymousId": "kari-phone", "messageId": "k-id"}],
    )
    orders, cart, wishlist = await _state(client, admin_headers, "anonymous_id:kari-phone")
    assert [o["id"] for o in orders["items"]] == ["OLD-1"]
    assert [i["product_id"] for i in cart["items"]] == ["ALP-JKT"]
    assert sorted(i["product_id"] for i in wishlist["items"]) == ["ALP-JKT", "HIKE-BT"]


async def test_erasure_removes_carts_and_wishlists_and_anonymises_orders(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    await send_batch(client, write_key, shopper_journey("anon-e", "eva", "O-8008", "oslo-1"))
    await send_batch(
        client, write_key, [track("Product Added", {**JACKET, "quantity": 1}, userId="eva")]
    )
    response = await client.delete("/api/profiles/user_id:eva", headers=admin_headers)
    assert response.status_code == 200, response.text
    async with db.session() as session:
        carts = (await session.execute(select(func.count()).select_from(Cart))).scalar_one()
        wishes = (
            await session.execute(select(func.count()).select_from(WishlistItem))
        ).scalar_one()
        order = (await session.execute(select(Order))).scalar_one()
    assert (carts, wishes) == (0, 0)
    assert order.profile_id is None and str(order.total) == "224.00"  # revenue still counts


PRODUCTS = """id,sku,name,price,currency,category
ALP-JKT,ALP-JKT-M,Alpine jacket,199.00,EUR,Outerwear
WOOL-BN,WOOL-BN-1,Wool beanie,25,EUR,Accessories
BAD,,No price,abc,EUR,
"""
ORDERS = (
    (
        "order_id,placed_at,user_id,email,currency,channel,store_id,fulfillment,product_id,price,"
        "quantity\n"
    )
    + """S-1,2026-02-01T12:00:00Z,ulla,ulla@example.com,EUR,store,oslo-1,in_store,ALP-JKT,199,1
S-1,2026-02-01T12:00:00Z,ulla,ulla@example.com,EUR,store,oslo-1,in_store,WOOL-BN,25,2
S-2,2026-03-01T09:30:00,,nils@example.com,EUR,web,,,WOOL-BN,25,1
"""
)


async def test_csv_imports_are_idempotent(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    database_url: str,
    tmp_path: Path,
) -> None:
    products, orders = tmp_path / "products.csv", tmp_path / "orders.csv"
    products.write_text(PRODUCTS)
    orders.write_text(ORDERS)
    first = await omnicx(database_url, "import", "products", str(products))
    assert first.exit_code == 1  # the bad row is reported, the rest stored
    assert "line 4" in first.stderr and "2 stored" in first.stderr
    assert (await omnicx(database_url, "import", "orders", str(orders))).exit_code == 0
    counts = await row_counts(db)
    state = await _state(client, admin_headers, "user_id:ulla")
    assert (await omnicx(database_url, "import", "products", str(products))).exit_code == 1
    rerun = await omnicx(database_url, "import", "orders", str(orders))
    assert rerun.exit_code == 0 and "2 already there" in rerun.stderr
    assert await row_counts(db) == counts
    assert await _state(client, admin_headers, "user_id:ulla") == state

    [order] = state[0]["items"]
    assert (order["id"], order["channel"], order["fulfillment"], order["total"]) == (
        "S-1",
        "store",
        "in_store",
        "249.00",
    )
    nils = (
        await client.get("/api/profiles/email:nils@example.com/orders", headers=admin_headers)
    ).json()
    assert [o["id"] for o in nils["items"]] == ["S-2"]
    jacket = (await client.get("/api/products?q=Alpine", headers=admin_headers)).json()
    assert [(p["id"], p["price"], p["currency"]) for p in jacket] == [("ALP-JKT", "199.00", "EUR")]


async def test_the_embedded_worker_abandons_carts(db: Database, database_url: str) -> None:
    """`omnicx serve` runs the worker: an old cart is abandoned without anyone calling it."""
    write_key = await new_write_key(db)
    an_hour_ago = (utcnow() - timedelta(minutes=90)).isoformat()
    with LiveServer(database_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            event = {**track("Product Added", {**JACKET}, userId="late"), "timestamp": an_hour_ago}
            response = await http.post("/v1/batch", json={"batch": [event]}, auth=(write_key, ""))
            assert response.status_code == 200, response.text
            for _ in range(200):
                async with db.session() as session:
                    cart = (await session.execute(select(Cart))).scalar_one()
                if cart.status == "abandoned":
                    break
                await asyncio.sleep(0.05)
    assert cart.status == "abandoned"
