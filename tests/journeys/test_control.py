"""Pause holds customers where they are, resume lets them go on, stop exits them; re-entry
policies, entry keys and resent events; refusals that change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from omnicx import timers
from omnicx.db import Database, utcnow
from tests.helpers import row_counts, send_ok
from tests.journeys.factories import drain, journey, messages, publish_, runs, template, track


def remind(reentry: Any = "once_at_a_time", key: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"event": "Quote Requested"}
    if key:
        entry["key"] = key
    return {
        "entry": entry,
        "reentry": reentry,
        "nodes": [
            {"id": "wait", "type": "wait", "duration": "1h"},
            {"id": "remind", "type": "send", "message": "remind", "channel": "inapp"},
        ],
    }


async def pending_timers(db: Database) -> list[timers.Timer]:
    async with db.session() as session:
        return list((await session.execute(select(timers.Timer))).scalars())


async def test_pause_holds_resume_goes_on_stop_exits(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    hooks, h = app.state.hooks, admin_headers
    await template(client, h, "remind")
    await journey(client, h, "quotes", remind())
    t0 = utcnow()
    await track(client, write_key, "ana", "Quote Requested", t0)
    await drain(db, hooks, t0)
    paused = await client.post("/api/journeys/quotes/pause", headers=h)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (await client.post("/api/journeys/quotes/pause", headers=h)).status_code == 409

    # While paused: Ana's hour passes but she is held; Bo's request does not enter.
    await track(client, write_key, "bo", "Quote Requested", t0 + timedelta(minutes=5))
    await drain(db, hooks, t0 + timedelta(hours=1, seconds=1))
    [ana] = await runs(client, h, "user_id:ana")
    assert (ana["status"], ana["node"]) == ("waiting", "wait")
    assert await runs(client, h, "user_id:bo") == []
    assert await messages(db) == []
    [held] = [t for t in await pending_timers(db) if t.kind == "journey.run"]
    assert held.due_at is not None and held.due_at > t0 + timedelta(hours=1, seconds=1)

    assert (await client.post("/api/journeys/quotes/resume", headers=h)).status_code == 200
    await drain(db, hooks, t0 + timedelta(hours=2))
    [ana] = await runs(client, h, "user_id:ana")
    assert ana["status"] == "completed"
    assert [m.template for m in await messages(db)] == ["remind"]

    # Stop: whoever is inside exits at once; nothing of theirs stays on the timer table.
    await track(client, write_key, "cy", "Quote Requested", t0 + timedelta(hours=2))
    await drain(db, hooks, t0 + timedelta(hours=2))
    assert (await client.delete("/api/journeys/quotes", headers=h)).status_code == 409
    stopped = await client.post("/api/journeys/quotes/stop", headers=h)
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["journey"]["status"], stopped.json()["exited_runs"]) == ("stopped", 1)
    [cy] = await runs(client, h, "user_id:cy")
    assert (cy["status"], cy["exit_reason"]) == ("exited", "journey stopped")
    assert [t for t in await pending_timers(db) if t.kind.startswith("journey.")] == []
    await drain(db, hooks, t0 + timedelta(hours=4))
    assert [m.template for m in await messages(db)] == ["remind"]
    events = (await client.get("/api/profiles/user_id:cy/events", headers=h)).json()["items"]
    [exited] = [e for e in events if e["event"] == "Journey Exited"]
    assert exited["properties"]["reason"] == "journey stopped"
    assert (await client.post("/api/journeys/quotes/stop", headers=h)).status_code == 409
    assert (await client.delete("/api/journeys/quotes", headers=h)).status_code == 204
    assert (await client.get("/api/journeys/quotes", headers=h)).status_code == 404
    assert await runs(client, h, "user_id:cy") == []


@pytest.mark.parametrize(
    ("reentry", "entered"),
    [
        # Triggers at 0 (enters), 30 min (inside), 2 h (done), 3 days (done, past a cooldown).
        ("once", [0]),
        ("once_at_a_time", [0, 2, 3]),
        ({"cooldown": "2d"}, [0, 3]),
    ],
)
async def test_reentry_policies(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
    reentry: Any,
    entered: list[int],
) -> None:
    await template(client, admin_headers, "remind")
    await journey(client, admin_headers, "quotes", remind(reentry))
    t0 = utcnow()
    offsets = [timedelta(0), timedelta(minutes=30), timedelta(hours=2), timedelta(days=3)]
    for at in (t0 + o for o in offsets):
        await drain(db, app.state.hooks, at)  # what was due by then has happened
        await track(client, write_key, "ana", "Quote Requested", at)
        await drain(db, app.state.hooks, at)
    started = sorted(r["entered_at"] for r in await runs(client, admin_headers, "user_id:ana"))
    expected = sorted((t0 + offsets[i]).isoformat()[:19] for i in entered)
    assert [s[:19] for s in started] == expected


async def test_one_key_enters_once_and_a_resent_event_enters_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    await template(client, admin_headers, "remind")
    await journey(client, admin_headers, "quotes", remind({"cooldown": "1m"}, key="quote_id"))
    t0 = utcnow()
    body = {
        "userId": "ana",
        "event": "Quote Requested",
        "properties": {"quote_id": "Q-1"},
        "timestamp": t0.isoformat(),
        "messageId": "resent-1",
    }
    for _ in range(2):  # the SDK retries: the same messageId
        await send_ok(client, write_key, "track", **body)
    await drain(db, app.state.hooks, t0)
    # Q-1 again (a new message) after the first run finished and the cooldown passed: the key
    # has entered already. Q-2 enters; an event without the key enters nothing.
    later = t0 + timedelta(hours=2)
    await drain(db, app.state.hooks, later)
    await track(client, write_key, "ana", "Quote Requested", later, quote_id="Q-1")
    await track(client, write_key, "ana", "Quote Requested", later, quote_id="Q-2")
    await track(client, write_key, "ana", "Quote Requested", later)
    await drain(db, app.state.hooks, later)
    found = await runs(client, admin_headers, "user_id:ana")
    assert sorted(r["status"] for r in found) == ["completed", "waiting"]
    assert len(found) == 2


BAD: list[tuple[dict[str, Any], str]] = [
    ({"nodes": [{"id": "x", "type": "exit"}]}, "entry"),
    ({"entry": {"event": "E"}, "nodes": []}, "nodes"),
    ({"entry": {"event": "E"}, "nodes": [{"id": "x", "type": "teleport"}]}, "nodes.x.type"),
    (
        {
            "entry": {"event": "E"},
            "nodes": [{"id": "s", "type": "send", "message": "m", "channel": "fax"}],
        },
        "nodes.s.channel",
    ),
    (
        {"entry": {"event": "E"}, "nodes": [{"id": "w", "type": "wait", "duration": "soon"}]},
        "nodes.w.duration",
    ),
    (
        {
            "entry": {"event": "E"},
            "nodes": [{"id": "w", "type": "wait", "duration": "1h", "next": "nope"}],
        },
        "nodes.w.next",
    ),
    (
        {
            "entry": {"event": "E", "where": [{"property": "total", "op": "bigger", "value": 1}]},
            "nodes": [{"id": "x", "type": "exit"}],
        },
        "entry.where[0].op",
    ),
    (
        {
            "entry": {"event": "E"},
            "nodes": [
                {
                    "id": "b",
                    "type": "branch",
                    "branches": [{"when": {"trait": "tier", "op": "equals"}, "next": "b"}],
                }
            ],
        },
        "nodes.b.branches[0].when.value",
    ),
    (
        {
            "entry": {"event": "E"},
            "nodes": [
                {"id": "a", "type": "update_traits", "set": {"x": 1}, "next": "b"},
                {"id": "b", "type": "update_traits", "set": {"y": 1}, "next": "a"},
            ],
        },
        "nodes.b",
    ),
    (
        {
            "entry": {"event": "E"},
            "nodes": [
                {"id": "ab", "type": "split", "holdout": 100, "variants": [{"name": "a"}]},
            ],
        },
        "nodes.ab.holdout",
    ),
    (
        {"entry": {"event": "E"}, "reentry": "twice", "nodes": [{"id": "x", "type": "exit"}]},
        "reentry",
    ),
]


@pytest.mark.parametrize(("definition", "path"), BAD)
async def test_bad_definitions_are_refused_with_the_path_and_change_nothing(
    client: httpx.AsyncClient,
    db: Database,
    admin_headers: dict[str, str],
    definition: dict[str, Any],
    path: str,
) -> None:
    before = await row_counts(db)
    response = await client.post(
        "/api/journeys",
        json={"id": "bad", "name": "Bad", "definition": definition},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_definition", path)
    assert error["message"].startswith(f"{path}: ")
    assert await row_counts(db) == before


async def test_publishing_refuses_unknown_templates_and_segments(
    client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str]
) -> None:
    h = admin_headers
    await journey(client, h, "quotes", remind(), publish=False)
    before = await row_counts(db)
    response = await client.post("/api/journeys/quotes/publish", headers=h)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_template"
    await client.put(
        "/api/journeys/quotes",
        json={
            "name": "Quotes",
            "definition": {"entry": {"segment": "nobody"}, "nodes": [{"id": "x", "type": "exit"}]},
        },
        headers=h,
    )
    before = await row_counts(db)
    response = await client.post("/api/journeys/quotes/publish", headers=h)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_segment"
    assert await row_counts(db) == before
    assert (await client.get("/api/journeys/quotes", headers=h)).json()["status"] == "draft"
    assert (await client.post("/api/journeys/nothing/publish", headers=h)).status_code == 404
    await template(client, h, "remind")
    await client.put("/api/journeys/quotes", json={"name": "Q", "definition": remind()}, headers=h)
    assert (await publish_(client, h, "quotes"))["journey"]["status"] == "live"


async def test_a_broken_run_fails_alone_and_the_batch_goes_on(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    """One run whose wake-up raises (here: its node vanished) does not hold up the others due
    with it: the batch is rolled back and handled one by one; only the broken timer is kept,
    with its error, for a retry."""
    from sqlalchemy import update

    from omnicx.journeys.models import JourneyRun

    await template(client, admin_headers, "remind")
    await journey(client, admin_headers, "quotes", remind())
    t0 = utcnow()
    for user in ("ana", "bo", "cy"):
        await track(client, write_key, user, "Quote Requested", t0)
    await drain(db, app.state.hooks, t0)
    [bo] = await runs(client, admin_headers, "user_id:bo")

    async def break_bo(session: Any) -> None:
        await session.execute(
            update(JourneyRun).where(JourneyRun.id == bo["id"]).values(node="ghost")
        )

    await db.transaction(break_bo)
    later = t0 + timedelta(hours=1, seconds=1)
    await timers.run_due(db, app.state.hooks, now=later)
    statuses = {
        u: (await runs(client, admin_headers, f"user_id:{u}"))[0]["status"]
        for u in ("ana", "bo", "cy")
    }
    assert statuses == {"ana": "completed", "bo": "waiting", "cy": "completed"}
    [left] = [t for t in await pending_timers(db) if t.kind.startswith("journey.")]
    assert left.key == f"journey.run:{bo['id']}" and left.attempts == 1
    assert "ghost" in (left.last_error or "")
    assert len(await messages(db)) == 2
