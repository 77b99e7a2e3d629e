"""Small helpers shared by API tests: sending events and reading state back."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import func, select

from omnicx.db import Database
from omnicx.models import Base

_ids = itertools.count()


def message_id() -> str:
    return f"msg-{next(_ids)}"


async def send(client: httpx.AsyncClient, write_key: str, kind: str, **body: Any) -> httpx.Response:
    body.setdefault("messageId", message_id())
    return await client.post(f"/v1/{kind}", json=body, auth=(write_key, ""))


async def send_ok(client: httpx.AsyncClient, write_key: str, kind: str, **body: Any) -> None:
    response = await send(client, write_key, kind, **body)
    assert response.status_code == 200, response.text


async def profile(
    client: httpx.AsyncClient, headers: dict[str, str], external_id: str
) -> dict[str, Any]:
    response = await client.get(f"/api/profiles/{external_id}", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def timeline(
    client: httpx.AsyncClient, headers: dict[str, str], external_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/profiles/{external_id}/events", headers=headers, params=params
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# Bookkeeping that every request moves (the shared rate-limit windows), not data a request changes.
NOT_DATA = frozenset({"rate_limits"})


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per data table: "nothing else changed" is checked against this."""
    counts = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_DATA:
                continue
            counts[table.name] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return counts
