"""Templates and brand kit through the API: errors at save time with positions, previews for a
profile, channel choice and its stored reason, erasure of what messaging holds."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database
from omnicx.messaging.models import Message
from omnicx.messaging.providers.base import Channel
from omnicx.settings import Settings
from tests.helpers import row_counts, send_ok
from tests.messaging.factories import (
    BRAND,
    SALE,
    customer,
    send,
    setup_brand_and_templates,
    submit_at,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


async def test_liquid_errors_are_refused_at_save_with_line_and_column(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    await client.put("/api/brand", json=BRAND, headers=admin_headers)
    before = await row_counts(db)
    broken = {
        "variants": {
            "email": {
                "subject": "Hi {{ profile.first_name }",
                "html": "<p>ok</p>\n<p>{{ data.x | shout }}</p>\n{% render 'nowhere' %}",
            },
            "sms": {"text": "line one\n{% if data.x %}never closed"},
        }
    }
    response = await client.put("/api/templates/broken", json=broken, headers=admin_headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_invalid"
    problems = {(d["field"], d["line"], d["column"]): d["msg"] for d in error["details"]}
    assert problems[("variants.email.subject", 1, 4)].startswith("expected '}}'")
    assert problems[("variants.email.html", 2, 16)] == "unknown filter 'shout'"
    assert problems[("variants.email.html", 3, 11)] == "no partial 'nowhere'"
    assert any(field == "variants.sms.text" and line == 2 for field, line, _ in problems)
    for body, status in [
        ({"variants": {}}, 422),
        ({"variants": {"fax": {"text": "x"}}}, 422),
        ({"category": "spam", "variants": {"sms": {"text": "x"}}}, 422),
        ({"topic": "has space", "variants": {"sms": {"text": "x"}}}, 422),
    ]:
        bad = await client.put("/api/templates/bad", json=body, headers=admin_headers)
        assert bad.status_code == status, bad.text
    assert (
        await client.put("/api/templates/Bad Name", json=SALE, headers=admin_headers)
    ).status_code == 404
    bad_brand = await client.put(
        "/api/brand",
        json={**BRAND, "email_layout": "<html>{% for x in y %}</html>"},
        headers=admin_headers,
    )
    assert bad_brand.status_code == 422
    assert await row_counts(db) == before
    assert (await client.get("/api/brand", headers=admin_headers)).json()["name"] == BRAND["name"]


async def test_preview_renders_any_variant_for_a_profile(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(client, write_key, "u-1", first_name="Ana", email="ana@example.com")
    await send_ok(
        client,
        write_key,
        "track",
        userId="u-1",
        event="Product Added",
        properties={"product_id": "ALP-JKT", "name": "Alpine jacket", "price": 199, "quantity": 1},
    )
    cart_template = {
        "category": "marketing",
        "variants": {
            "push": {
                "title": "{{ profile.first_name }}, your cart",
                "body": "{{ cart.items.size }} item: {{ cart.items.first.name }}",
            }
        },
    }
    put = await client.put("/api/templates/cart-nudge", json=cart_template, headers=admin_headers)
    assert put.status_code == 201 and put.json()["version"] == 1
    before = await row_counts(db)
    push = await client.post(
        "/api/templates/cart-nudge/preview",
        json={"channel": "push", "to": "user_id:u-1"},
        headers=admin_headers,
    )
    assert push.status_code == 200, push.text
    assert push.json()["content"]["title"] == "Ana, your cart"
    assert push.json()["content"]["body"] == "1 item: Alpine jacket"
    email = await client.post(
        "/api/templates/spring-sale/preview",
        json={"channel": "email", "to": "user_id:u-1", "data": {"product": "tent"}},
        headers=admin_headers,
    )
    content = email.json()["content"]
    assert content["subject"] == "Ana, 10% off the tent today"
    assert "Alpine Outfitters AS" in content["html"] and "Hi Ana," in content["html"]
    no_variant = await client.post(
        "/api/templates/cart-nudge/preview", json={"channel": "sms"}, headers=admin_headers
    )
    assert no_variant.status_code == 422
    unknown = await client.post(
        "/api/templates/spring-sale/preview",
        json={"channel": "email", "to": "user_id:nobody"},
        headers=admin_headers,
    )
    assert unknown.status_code == 404
    assert await row_counts(db) == before  # previews send and store nothing

    again = await client.put("/api/templates/cart-nudge", json=cart_template, headers=admin_headers)
    assert again.status_code == 200 and again.json()["version"] == 2


async def test_channel_choice_chain_and_auto_store_their_reason(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(
        client,
        write_key,
        "u-1",
        email="ana@example.com",
        phone="+4791234567",
        consent={"email": True, "inapp": True, "sms": False},
    )
    available = {"smtp": Channel.email, "fake-sms": Channel.sms, "inapp": Channel.inapp}
    hooks = app.state.hooks
    chain = await submit_at(
        db,
        hooks,
        settings,
        T0,
        available=available,
        to="user_id:u-1",
        channel=["push", "sms", "email"],
    )
    assert chain.channel == "email"
    assert chain.choice_reason == (
        "first usable in chain after push: no provider; sms: consent sms/all denied"
    )
    auto = await submit_at(
        db, hooks, settings, T0, available=available, to="user_id:u-1", channel="auto"
    )
    assert auto.channel == "email"
    assert auto.choice_reason == (
        "auto: no engagement yet, by order after push: no provider; webpush: no provider"
    )

    # She reads her in-app messages, never her email: auto moves to in-app.
    async def opened(session: AsyncSession) -> None:
        await session.execute(update(Message).values(channel="inapp", opened_at=T0))

    await db.transaction(opened)
    engaged = await submit_at(
        db, hooks, settings, T0, available=available, to="user_id:u-1", channel="auto"
    )
    assert engaged.channel == "inapp" and engaged.choice_reason.startswith("auto: most engaged")

    nothing = await submit_at(
        db, hooks, settings, T0, available=available, to="user_id:u-1", channel="sms"
    )
    assert nothing.status == "skipped" and nothing.reason == "sms: consent sms/all denied"


async def test_erasure_suppresses_addresses_and_strips_messages(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(client, write_key, "u-1", email="ana@example.com", consent={"email": True})
    sent = await send(client, admin_headers, to="user_id:u-1", channel="email")
    erase = await client.delete("/api/profiles/user_id:u-1", headers=admin_headers)
    assert erase.status_code == 200, erase.text
    async with db.session() as session:
        row = await session.get(Message, sent["id"])
    assert row is not None
    assert (row.profile_id, row.to, row.content, row.status) == (None, None, {}, "skipped")

    # A complaint reported elsewhere suppresses an address the same way.
    added = await client.post(
        "/api/suppressions",
        json={"kind": "email", "value": " Bo@Example.com", "reason": "complaint"},
        headers=admin_headers,
    )
    assert added.status_code == 200
    await customer(client, write_key, "u-2", email="bo@example.com", consent={"email": True})
    later = await send(client, admin_headers, to="user_id:u-2", channel="email")
    assert later["status"] == "skipped" and "suppressed (complaint)" in later["reason"]
