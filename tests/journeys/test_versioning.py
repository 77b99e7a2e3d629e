"""Publishing while customers are inside: they stay on the version they entered, new ones enter
the new version, and a node mapping moves waiting customers onto it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from omnicx.db import Database, utcnow
from tests.helpers import row_counts
from tests.journeys.factories import drain, journey, messages, publish_, runs, template, track


def welcome(version: str, wait_id: str = "wait", wait: str = "1d") -> dict[str, Any]:
    return {
        "entry": {"event": "Signed Up"},
        "nodes": [
            {"id": wait_id, "type": "wait", "duration": wait},
            {"id": "hello", "type": "send", "message": f"welcome-{version}", "channel": "inapp"},
        ],
    }


async def put_draft(
    client: httpx.AsyncClient, headers: dict[str, str], definition: dict[str, Any]
) -> None:
    response = await client.put(
        "/api/journeys/welcome", json={"name": "Welcome", "definition": definition}, headers=headers
    )
    assert response.status_code == 200, response.text


async def sent(client: httpx.AsyncClient, headers: dict[str, str], db: Database) -> dict[str, str]:
    ids = {}
    for user in ("ana", "bo", "cy", "dee", "eve"):
        response = await client.get(f"/api/profiles/user_id:{user}", headers=headers)
        if response.status_code == 200:
            ids[response.json()["id"]] = user
    return {ids[m.profile_id or ""]: m.template for m in await messages(db)}


async def test_in_flight_stay_new_ones_enter_the_new_version_and_mapping_migrates(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    hooks, h = app.state.hooks, admin_headers
    for v in ("v1", "v2", "v3"):
        await template(client, h, f"welcome-{v}")
    t0 = utcnow()
    await journey(client, h, "welcome", welcome("v1"))
    await track(client, write_key, "ana", "Signed Up", t0)
    await drain(db, hooks, t0)

    await put_draft(client, h, welcome("v2"))
    assert (await publish_(client, h, "welcome"))["version"] == 2
    await track(client, write_key, "bo", "Signed Up", t0)
    await drain(db, hooks, t0)
    assert [r["version"] for r in await runs(client, h, "user_id:ana")] == [1]
    assert [r["version"] for r in await runs(client, h, "user_id:bo")] == [2]

    day1 = t0 + timedelta(days=1, seconds=1)
    await drain(db, hooks, day1)
    assert await sent(client, h, db) == {"ana": "welcome-v1", "bo": "welcome-v2"}

    # Cy and Dee enter v2 on day one; v3 renames the wait and maps the old one onto it.
    for user in ("cy", "dee"):
        await track(client, write_key, user, "Signed Up", day1)
    await drain(db, hooks, day1)
    await put_draft(client, h, welcome("v3", wait_id="hold", wait="3d"))
    before = await row_counts(db)
    for bad, code in (
        ({"nowhere": "hold"}, "invalid_migration"),
        ({"wait": "gone"}, "invalid_migration"),
    ):
        response = await client.post(
            "/api/journeys/welcome/publish", json={"migrate": bad}, headers=h
        )
        assert response.status_code == 422 and response.json()["error"]["code"] == code
    assert await row_counts(db) == before
    published = await publish_(client, h, "welcome", migrate={"wait": "hold"})
    assert (published["version"], published["migrated_runs"]) == (3, 2)
    await track(client, write_key, "eve", "Signed Up", day1)
    await drain(db, hooks, day1)

    # Day two: the migrated customers' original wake-up comes; they go on as v3 says. Eve,
    # who entered v3 itself, waits its three days.
    await drain(db, hooks, t0 + timedelta(days=2, seconds=2))
    assert await sent(client, h, db) == {
        "ana": "welcome-v1",
        "bo": "welcome-v2",
        "cy": "welcome-v3",
        "dee": "welcome-v3",
    }
    [cy] = await runs(client, h, "user_id:cy")
    assert (cy["version"], cy["status"]) == (3, "completed")
    assert [s["node"] for s in cy["steps"]] == ["wait", "hello"]
    [eve] = await runs(client, h, "user_id:eve")
    assert (eve["version"], eve["status"], eve["node"]) == (3, "waiting", "hold")
    detail = (await client.get("/api/journeys/welcome", headers=h)).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2, 3]
    assert detail["versions"][2]["migrated"] == {"wait": "hold"}
