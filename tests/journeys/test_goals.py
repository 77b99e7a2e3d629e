"""A goal event that comes before the journey's enter timer ran: the customer enters converted
and is sent nothing. Orders from before the trigger, or for another cart, do not count. On
PostgreSQL, an entry whose profile ingest is writing at that moment is put off, not raced."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from omnicx.db import Database, utcnow
from omnicx.profiles.models import Profile
from tests.journeys.factories import drain, journey, messages, runs, stats, template, track

CHECKOUT = {
    "entry": {"event": "Checkout Started", "key": "cart_id"},
    "goal": {"event": "Order Completed", "within": "3d", "match": ["cart_id"]},
    "nodes": [
        {"id": "wait-an-hour", "type": "wait", "duration": "1h"},
        {"id": "nudge", "type": "send", "message": "nudge", "channel": "inapp"},
    ],
}


async def test_a_goal_before_the_entry_ran_converts_at_entry(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h, hooks = admin_headers, app.state.hooks
    await template(client, h, "nudge")
    await journey(client, h, "checkout", CHECKOUT)
    start = utcnow().replace(microsecond=0)
    early = start - timedelta(minutes=5)
    # Ana orders two minutes after starting checkout, before any worker ran the entry.
    await track(client, write_key, "ana", "Checkout Started", start, cart_id="c-ana")
    await track(
        client,
        write_key,
        "ana",
        "Order Completed",
        start + timedelta(minutes=2),
        cart_id="c-ana",
        order_id="O-1",
    )
    # Bo's order came before his checkout; Cy's is for another cart: neither counts.
    await track(client, write_key, "bo", "Order Completed", early, cart_id="c-bo", order_id="O-2")
    await track(client, write_key, "bo", "Checkout Started", start, cart_id="c-bo")
    await track(client, write_key, "cy", "Checkout Started", start, cart_id="c-cy")
    await track(
        client,
        write_key,
        "cy",
        "Order Completed",
        start + timedelta(minutes=1),
        cart_id="c-other",
        order_id="O-3",
    )
    await drain(db, hooks, start + timedelta(minutes=3))

    [ana] = await runs(client, h, "user_id:ana")
    assert (ana["status"], ana["exit_reason"]) == ("converted", "goal")
    assert [(s["node"], s["outcome"]) for s in ana["steps"]] == [("$goal", "converted")]
    for user in ("bo", "cy"):
        [run] = await runs(client, h, f"user_id:{user}")
        assert (run["status"], run["node"]) == ("waiting", "wait-an-hour")

    await drain(db, hooks, start + timedelta(hours=2))
    sent = {m.profile_id for m in await messages(db)}
    ids = {
        u: (await client.get(f"/api/profiles/user_id:{u}", headers=h)).json()["id"]
        for u in ("ana", "bo", "cy")
    }
    assert sent == {ids["bo"], ids["cy"]}
    report = await stats(client, h, "checkout")
    assert report["totals"]["converted"] == 1
    assert report["totals"]["completed"] == 2
    events = (await client.get("/api/profiles/user_id:ana/events", headers=h)).json()["items"]
    [converted] = [e for e in events if e["event"] == "Journey Converted"]
    assert converted["properties"]["before_entry"] is True


async def test_an_entry_waits_for_a_profile_being_written(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    h, hooks = admin_headers, app.state.hooks
    await template(client, h, "nudge")
    await journey(client, h, "checkout", CHECKOUT)
    start = utcnow().replace(microsecond=0)
    await track(client, write_key, "ana", "Checkout Started", start, cart_id="c-ana")
    ana_id = (await client.get("/api/profiles/user_id:ana", headers=h)).json()["id"]

    async with db.session() as writer:  # as ingest holds it while storing Ana's events
        locked = select(Profile.id).where(Profile.id == ana_id).with_for_update()
        await writer.execute(locked)
        await drain(db, hooks, start)
        assert await runs(client, h, "user_id:ana") == []
        await writer.rollback()

    await drain(db, hooks, start + timedelta(seconds=1))
    [ana] = await runs(client, h, "user_id:ana")
    assert (ana["status"], ana["node"]) == ("waiting", "wait-an-hour")
