"""Retention: old raw events are deleted and old message bodies blanked, while what was derived
from them (traits, orders, segment membership, message statuses) and the reports built on it
stay as they were."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update

from omnicx import worker
from omnicx.db import Database, utcnow
from omnicx.messaging.models import Message
from omnicx.ops import retention
from omnicx.profiles.models import Event
from omnicx.settings import Settings
from tests.helpers import send_ok

TEMPLATE = {
    "category": "transactional",
    "variants": {"inapp": {"title": "Your order {{ data.order }}", "body": "Thanks!"}},
}


async def _snapshot(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    async def get(url: str) -> Any:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.text)
        return response.json()

    profile = await get("/api/profiles/user_id:ana")
    messages = await get("/api/profiles/user_id:ana/messages")
    return {
        "traits": profile["traits"],
        "orders": await get("/api/profiles/user_id:ana/orders"),
        "segments": [s["id"] for s in await get("/api/profiles/user_id:ana/segments")],
        "members": (await get("/api/segments/vip"))["members"],
        "statuses": sorted(m["status"] for m in messages["items"]),
    }


async def test_pruning_keeps_what_was_derived(
    app: FastAPI,
    client: httpx.AsyncClient,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
    settings: Settings,
) -> None:
    now = utcnow()
    old, recent = now - timedelta(days=90), now - timedelta(days=1)
    segment = {
        "id": "vip",
        "name": "VIP",
        "definition": {"trait": "tier", "op": "equals", "value": "gold"},
    }
    assert (
        await client.post("/api/segments", json=segment, headers=admin_headers)
    ).status_code == 201
    put = await client.put("/api/templates/receipt", json=TEMPLATE, headers=admin_headers)
    assert put.status_code in (200, 201), put.text
    await send_ok(
        client,
        write_key,
        "identify",
        userId="ana",
        traits={"tier": "gold"},
        timestamp=old.isoformat(),
    )
    await send_ok(
        client,
        write_key,
        "track",
        userId="ana",
        event="Order Completed",
        properties={
            "order_id": "O-1",
            "total": 120.0,
            "currency": "EUR",
            "products": [{"product_id": "P-1", "price": 120.0, "quantity": 1}],
        },
        timestamp=old.isoformat(),
    )
    await send_ok(
        client, write_key, "track", userId="ana", event="Viewed", timestamp=recent.isoformat()
    )
    sent = await client.post(
        "/api/messages",
        json={
            "to": "user_id:ana",
            "message": "receipt",
            "channel": "inapp",
            "data": {"order": "O-1"},
        },
        headers=admin_headers,
    )
    assert sent.status_code == 201, sent.text
    while await worker.run_once(db, app.state.hooks):
        pass

    async def age_messages(session: Any) -> None:
        await session.execute(update(Message).values(created_at=old))

    await db.transaction(age_messages)
    before = await _snapshot(client, admin_headers)
    assert before["orders"] and before["segments"] and before["statuses"]

    keep = settings.model_copy(
        update={"retention_events_days": 30, "retention_message_bodies_days": 30}
    )
    while await retention.prune(db, keep, utcnow()):
        pass

    assert await _snapshot(client, admin_headers) == before
    async with db.session() as session:
        left = (await session.execute(select(Event.event, Event.timestamp))).all()
        bodies = (
            await session.execute(select(Message.content, Message.data, Message.status))
        ).all()
    assert left and all(ts >= now - timedelta(days=30) for _, ts in left)
    assert "Order Completed" not in {e for e, _ in left}
    assert all(content == {} and data == {} for content, data, _ in bodies)
    timeline = await client.get("/api/profiles/user_id:ana/events", headers=admin_headers)
    assert "Order Completed" not in timeline.text and "Viewed" in timeline.text


async def test_nothing_is_pruned_when_retention_is_off(
    db: Database, client: httpx.AsyncClient, write_key: str, settings: Settings
) -> None:
    await send_ok(
        client, write_key, "track", userId="bo", event="Old", timestamp="2001-01-01T00:00:00Z"
    )
    assert settings.retention_events_days == 0
    assert await retention.prune(db, settings, utcnow()) == 0
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 1
