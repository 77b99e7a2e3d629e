"""Builders for journey tests: templates, journeys, customers, and the worker at a chosen time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from omnicx import timers
from omnicx.db import Database
from omnicx.hooks import Hooks
from omnicx.messaging.models import Message
from tests.helpers import send_ok

INAPP = {
    "category": "transactional",
    "variants": {"inapp": {"title": "{{ data.title | default: 'Hello' }}", "body": "Hi"}},
}


async def template(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, body: dict[str, Any] = INAPP
) -> None:
    response = await client.put(f"/api/templates/{name}", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text


async def journey(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    journey_id: str,
    definition: dict[str, Any],
    *,
    publish: bool = True,
) -> dict[str, Any]:
    response = await client.post(
        "/api/journeys",
        json={"id": journey_id, "name": journey_id.title(), "definition": definition},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    if not publish:
        data: dict[str, Any] = response.json()
        return data
    return await publish_(client, headers, journey_id)


async def publish_(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    journey_id: str,
    migrate: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        f"/api/journeys/{journey_id}/publish",
        json={"migrate": migrate or {}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def track(
    client: httpx.AsyncClient,
    write_key: str,
    user_id: str,
    event: str,
    at: datetime,
    **properties: Any,
) -> None:
    await send_ok(
        client,
        write_key,
        "track",
        userId=user_id,
        event=event,
        properties=properties,
        timestamp=at.isoformat(),
    )


async def identify(
    client: httpx.AsyncClient, write_key: str, user_id: str, at: datetime, **traits: Any
) -> None:
    context = traits.pop("context", {})
    await send_ok(
        client,
        write_key,
        "identify",
        userId=user_id,
        traits=traits,
        context=context,
        timestamp=at.isoformat(),
    )


async def drain(db: Database, hooks: Hooks, now: datetime) -> int:
    """Run due timers at ``now`` until none is left (jobs other than timers are not run)."""
    total = 0
    while ran := await timers.run_due(db, hooks, now=now):
        total += ran
    return total


async def runs(
    client: httpx.AsyncClient, headers: dict[str, str], external_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/profiles/{external_id}/journeys", headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()
    return data


async def messages(db: Database) -> list[Message]:
    async with db.session() as session:
        return list((await session.execute(select(Message).order_by(Message.id))).scalars())


async def stats(
    client: httpx.AsyncClient, headers: dict[str, str], journey_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/journeys/{journey_id}/stats", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data
