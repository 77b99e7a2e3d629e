"""Builders for messaging tests: customers with consent, templates, the brand kit, sends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database
from omnicx.hooks import Hooks
from omnicx.messaging.models import Message
from omnicx.messaging.providers.base import Channel
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.service import SendRequest, submit
from omnicx.settings import Settings
from tests.helpers import send_ok

BRAND = {
    "name": "Alpine Outfitters",
    "logo_url": "https://cdn.alpine.example/logo.png",
    "from_name": "Alpine Outfitters",
    "from_email": "hello@alpine.example",
    "sign_off": "See you on the trail,\nThe Alpine team",
    "footer": "You get this because you joined Alpine Club.",
    "legal_address": "Alpine Outfitters AS, Karl Johans gate 1, 0154 Oslo",
    "partials": {"greeting": "Hi {{ profile.first_name | default: 'there' }},"},
}
SALE = {
    "category": "marketing",
    "topic": "newsletter",
    "variants": {
        "email": {
            "subject": "{{ profile.first_name }}, 10% off the {{ data.product }} today",
            "html": "<p>{% render 'greeting', profile: profile %}</p>"
            '<p>Still thinking about it? <a href="https://shop.alpine.example/p/alp-jkt">'
            "Get the {{ data.product }}</a></p>",
        },
        "sms": {"text": "{{ brand.name }}: 10% off the {{ data.product }} today."},
        "push": {"title": "Still thinking about it?", "body": "10% off the {{ data.product }}"},
        "inapp": {
            "title": "10% off today",
            "body": "The {{ data.product }} is waiting, {{ profile.first_name }}.",
            "link": "https://shop.alpine.example/p/alp-jkt",
        },
        "webhook": {"payload": {"customer": "{{ profile.id }}", "offer": "{{ data.product }}"}},
    },
}
RECEIPT = {
    "category": "transactional",
    "variants": {
        "email": {
            "subject": "Your order {{ data.order_id }}",
            "html": "<p>{% render 'greeting', profile: profile %}</p><p>Thanks for your order.</p>",
        },
        "inapp": {"title": "Order {{ data.order_id }}", "body": "Thanks!"},
    },
}


async def setup_brand_and_templates(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert (await client.put("/api/brand", json=BRAND, headers=headers)).status_code == 200
    for name, body in (("spring-sale", SALE), ("receipt", RECEIPT)):
        response = await client.put(f"/api/templates/{name}", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text


async def customer(
    client: httpx.AsyncClient,
    write_key: str,
    user_id: str,
    *,
    consent: dict[str, Any] | None = None,
    **traits: Any,
) -> None:
    """A customer identified with traits (email, phone, timezone…) and consent."""
    context: dict[str, Any] = {}
    if consent is not None:
        context["consent"] = consent
    traits.setdefault("first_name", "Ana")
    await send_ok(client, write_key, "identify", userId=user_id, traits=traits, context=context)


async def send(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("message", "spring-sale")
    body.setdefault("data", {"product": "Alpine jacket"})
    response = await client.post("/api/messages", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()
    return data


async def message(
    client: httpx.AsyncClient, headers: dict[str, str], message_id: int
) -> dict[str, Any]:
    response = await client.get(f"/api/messages/{message_id}", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def submit_at(
    db: Database,
    hooks: Hooks,
    settings: Settings,
    now: datetime,
    *,
    available: Mapping[str, Channel] | None = None,
    **request: Any,
) -> Message:
    """``POST /api/messages`` at a chosen instant (the service, with an explicit clock)."""
    request.setdefault("message", "spring-sale")
    request.setdefault("data", {"product": "Alpine jacket"})
    send_request = SendRequest(**request)

    async def work(session: AsyncSession) -> Message:
        submitted = await submit(
            session,
            settings,
            hooks,
            request=send_request,
            available=configured(settings) if available is None else available,
            now=now,
        )
        return submitted.message

    return await db.transaction(work)
