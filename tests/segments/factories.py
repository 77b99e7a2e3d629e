"""Helpers for segment tests: define segments, run the worker at a chosen time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from omnicx import timers
from omnicx.db import Database
from omnicx.hooks import Hooks


async def drain(db: Database, hooks: Hooks, now: datetime) -> int:
    """Run due timers and every job at ``now`` until nothing is left to do."""
    total = 0
    while True:
        ran = await timers.run_due(db, hooks, now=now)
        for job in hooks.jobs:
            ran += await job(db, hooks, now)
        if ran == 0:
            return total
        total += ran


async def define(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    segment_id: str,
    definition: dict[str, Any],
) -> None:
    response = await client.post(
        "/api/segments",
        json={"id": segment_id, "name": segment_id.title(), "definition": definition},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def members(client: httpx.AsyncClient, headers: dict[str, str], segment_id: str) -> set[str]:
    out: set[str] = set()
    after = None
    while True:
        params = {"limit": 50, **({"after": after} if after else {})}
        response = await client.get(
            f"/api/segments/{segment_id}/members", params=params, headers=headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        out |= set(page["items"])
        after = page["next"]
        if after is None:
            return out


async def profile_id(client: httpx.AsyncClient, headers: dict[str, str], external_id: str) -> str:
    response = await client.get(f"/api/profiles/{external_id}", headers=headers)
    assert response.status_code == 200, response.text
    pid: str = response.json()["id"]
    return pid
