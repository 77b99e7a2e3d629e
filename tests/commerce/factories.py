"""Builders for commerce tests: a store, a shopper's journey of e-commerce events."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import message_id

STORE = {
    "name": "Oslo Karl Johan",
    "address": "Karl Johans gate 1, Oslo",
    "timezone": "Europe/Oslo",
    "opening_hours": {"mon": [["10:00", "20:00"]]},
    "hold_days": 7,
}
JACKET = {
    "product_id": "ALP-JKT",
    "sku": "ALP-JKT-M",
    "name": "Alpine jacket",
    "price": 199.0,
    "category": "Outerwear",
    "image_url": "https://cdn.example.com/a.jpg",
}
BEANIE = {
    "product_id": "WOOL-BN",
    "sku": "WOOL-BN-1",
    "name": "Wool beanie",
    "price": 25.0,
    "category": "Accessories",
}


def track(event: str, properties: dict[str, Any], **ids: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "properties": properties,
        "messageId": message_id(),
        **ids,
    }


def shopper_journey(anon: str, user: str, order_id: str, store_id: str) -> list[dict[str, Any]]:
    """Anonymous browsing, cart, wishlist, login, checkout with pickup."""
    who = {"anonymousId": anon}
    known = {"anonymousId": anon, "userId": user}
    return [
        track("Product Viewed", JACKET, **who),
        track("Product Added", {**JACKET, "cart_id": "cart-1", "quantity": 1}, **who),
        track("Product Added", {**BEANIE, "cart_id": "cart-1", "quantity": 2}, **who),
        track("Product Removed", {**BEANIE, "cart_id": "cart-1", "quantity": 1}, **who),
        track(
            "Product Added to Wishlist",
            {"wishlist_id": "w1", "product_id": "HIKE-BT", "name": "Hiking boots", "price": 149.0},
            **who,
        ),
        {
            "type": "identify",
            "traits": {"email": f"{user}@example.com"},
            "messageId": message_id(),
            **known,
        },
        track(
            "Checkout Started",
            {
                "order_id": order_id,
                "cart_id": "cart-1",
                "value": 224.0,
                "currency": "EUR",
                "products": [{**JACKET, "quantity": 1}, {**BEANIE, "quantity": 1}],
            },
            **known,
        ),
        track("Coupon Applied", {"cart_id": "cart-1", "coupon_name": "WELCOME10"}, **known),
        track(
            "Order Completed",
            {
                "order_id": order_id,
                "cart_id": "cart-1",
                "total": 224.0,
                "subtotal": 224.0,
                "currency": "EUR",
                "coupon": "WELCOME10",
                "fulfillment": "pickup",
                "store_id": store_id,
                "products": [{**JACKET, "quantity": 1}, {**BEANIE, "quantity": 1}],
            },
            **known,
        ),
    ]


async def put_store(
    client: httpx.AsyncClient, headers: dict[str, str], store_id: str, **overrides: Any
) -> None:
    response = await client.put(
        f"/api/stores/{store_id}", json={**STORE, **overrides}, headers=headers
    )
    assert response.status_code == 200, response.text


async def send_batch(
    client: httpx.AsyncClient, write_key: str, events: list[dict[str, Any]]
) -> dict[str, Any]:
    response = await client.post("/v1/batch", json={"batch": events}, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["rejected"] == [], body
    return body


async def move(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, to: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/api/orders/{order_id}/transitions", json={"to": to, **extra}, headers=headers
    )
