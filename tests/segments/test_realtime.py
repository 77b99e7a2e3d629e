"""Membership follows events, time, merges, consent and erasure, without full scans."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from omnicx.db import Database, utcnow
from tests.helpers import message_id, send_ok, timeline
from tests.segments.factories import define, drain, members, profile_id


async def test_time_window_expires_without_new_events(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    hooks = app.state.hooks
    await define(
        client, admin_headers, "recent-viewers", {"event": "Product Viewed", "within": "1d"}
    )
    start = utcnow()
    await drain(db, hooks, start)
    await send_ok(
        client,
        write_key,
        "track",
        userId="vic",
        event="Product Viewed",
        timestamp=start.isoformat(),
    )
    await drain(db, hooks, start + timedelta(seconds=1))
    vic = await profile_id(client, admin_headers, "user_id:vic")
    assert await members(client, admin_headers, "recent-viewers") == {vic}
    [entered] = await timeline(client, admin_headers, "user_id:vic", event="Segment Entered")
    assert entered["properties"] == {
        "segment_id": "recent-viewers",
        "segment_name": "Recent-Viewers",
    }
    # Nothing happens for a day; the window closes on its own.
    assert await drain(db, hooks, start + timedelta(hours=23)) == 0
    assert await members(client, admin_headers, "recent-viewers") == {vic}
    assert await drain(db, hooks, start + timedelta(days=1, seconds=1)) == 1
    assert await members(client, admin_headers, "recent-viewers") == set()
    [exited] = await timeline(client, admin_headers, "user_id:vic", event="Segment Exited")
    assert exited["properties"]["segment_id"] == "recent-viewers"


async def test_an_edge_reached_exactly_now_is_still_ahead(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    """An order exactly a day old is not yet "more than a day ago": evaluated on the edge, the
    customer is out, and a moment later, with no new event, in."""
    hooks = app.state.hooks
    await define(
        client,
        admin_headers,
        "lapsed",
        {"commerce": "last_order", "op": "more_than_days_ago", "value": 1},
    )
    start = utcnow()
    await send_ok(
        client,
        write_key,
        "track",
        userId="lee",
        event="Order Completed",
        properties={"order_id": "o-1", "total": 10},
        timestamp=(start - timedelta(days=1)).isoformat(),
    )
    await drain(db, hooks, start)
    assert await members(client, admin_headers, "lapsed") == set()
    await drain(db, hooks, start + timedelta(minutes=1))
    lee = await profile_id(client, admin_headers, "user_id:lee")
    assert await members(client, admin_headers, "lapsed") == {lee}


async def test_cart_abandoner_enters_when_the_hour_passes(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    hooks = app.state.hooks
    await define(
        client,
        admin_headers,
        "abandoners",
        {
            "event": "Product Added",
            "within": "2d",
            "not_followed_by": {"event": "Order Completed", "within": "1h"},
        },
    )
    start = utcnow()
    for user in ("amy", "ben"):
        await send_ok(
            client,
            write_key,
            "track",
            userId=user,
            event="Product Added",
            timestamp=start.isoformat(),
        )
    await send_ok(
        client,
        write_key,
        "track",
        userId="ben",
        event="Order Completed",
        timestamp=(start + timedelta(minutes=30)).isoformat(),
    )
    await drain(db, hooks, start + timedelta(minutes=31))
    assert await members(client, admin_headers, "abandoners") == set()
    await drain(db, hooks, start + timedelta(minutes=61))
    amy = await profile_id(client, admin_headers, "user_id:amy")
    assert await members(client, admin_headers, "abandoners") == {amy}
    await drain(db, hooks, start + timedelta(days=2, minutes=1))
    assert await members(client, admin_headers, "abandoners") == set()


async def test_segments_built_on_segments_consent_and_profile_view(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    hooks = app.state.hooks
    await define(client, admin_headers, "gold", {"trait": "tier", "op": "equals", "value": "gold"})
    await define(
        client,
        admin_headers,
        "gold-mailable",
        {"and": [{"segment": "gold"}, {"reachable": "email", "topic": "marketing"}]},
    )
    await drain(db, hooks, utcnow())
    await send_ok(
        client,
        write_key,
        "identify",
        userId="gus",
        traits={"tier": "gold", "email": "gus@example.com"},
        context={"consent": {"email": {"marketing": True}}},
    )
    await drain(db, hooks, utcnow())
    gus = await profile_id(client, admin_headers, "user_id:gus")
    assert await members(client, admin_headers, "gold-mailable") == {gus}
    listed = (await client.get("/api/profiles/user_id:gus/segments", headers=admin_headers)).json()
    assert [s["id"] for s in listed] == ["gold", "gold-mailable"]

    response = await client.put(
        "/api/profiles/user_id:gus/consent",
        headers=admin_headers,
        json={"consents": [{"channel": "email", "topic": "marketing", "status": "denied"}]},
    )
    assert response.status_code == 200
    await drain(db, hooks, utcnow())
    assert await members(client, admin_headers, "gold-mailable") == set()
    assert await members(client, admin_headers, "gold") == {gus}

    csv = await client.get("/api/segments/gold/members.csv", headers=admin_headers)
    assert csv.text.splitlines() == ["profile_id", gus]
    refused = await client.delete("/api/segments/gold", headers=admin_headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "segment_in_use"


async def test_merge_and_erasure(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    hooks = app.state.hooks
    await define(client, admin_headers, "browsers", {"event": "Page Viewed", "count": {"gte": 2}})
    await drain(db, hooks, utcnow())
    await send_ok(client, write_key, "track", userId="hal", event="Page Viewed")
    await send_ok(client, write_key, "track", anonymousId="hal-phone", event="Page Viewed")
    await drain(db, hooks, utcnow())
    assert await members(client, admin_headers, "browsers") == set()
    await send_ok(
        client, write_key, "identify", userId="hal", anonymousId="hal-phone", messageId=message_id()
    )
    await drain(db, hooks, utcnow())
    hal = await profile_id(client, admin_headers, "user_id:hal")
    assert await members(client, admin_headers, "browsers") == {hal}
    response = await client.delete("/api/profiles/user_id:hal", headers=admin_headers)
    assert response.status_code == 200
    assert await members(client, admin_headers, "browsers") == set()


async def test_api_validation_and_crud(
    client: httpx.AsyncClient, admin_headers: dict[str, str], app: FastAPI, db: Database
) -> None:
    bad = await client.post(
        "/api/segments",
        headers=admin_headers,
        json={"id": "bad", "name": "Bad", "definition": {"and": [{"trait": "x", "op": "nope"}]}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"] == {
        "code": "invalid_definition",
        "path": "and[0].op",
        "message": bad.json()["error"]["message"],
    }
    assert "and[0].op" in bad.json()["error"]["message"]
    unknown = await client.post(
        "/api/segments",
        headers=admin_headers,
        json={"id": "ref", "name": "Ref", "definition": {"segment": "nowhere"}},
    )
    assert unknown.status_code == 422
    await define(client, admin_headers, "a", {"trait": "x", "op": "exists"})
    await define(client, admin_headers, "b", {"segment": "a"})
    cycle = await client.put(
        "/api/segments/a", headers=admin_headers, json={"name": "A", "definition": {"segment": "b"}}
    )
    assert cycle.status_code == 422 and "cycle" in cycle.json()["error"]["message"]
    again = await client.post(
        "/api/segments",
        headers=admin_headers,
        json={"id": "a", "name": "A", "definition": {"trait": "x", "op": "exists"}},
    )
    assert again.status_code == 409
    changed = await client.put(
        "/api/segments/a",
        headers=admin_headers,
        json={"name": "A2", "definition": {"trait": "y", "op": "exists"}},
    )
    assert changed.json()["version"] == 2 and changed.json()["dependencies"]["traits"] == ["y"]
    listed = (await client.get("/api/segments", headers=admin_headers)).json()
    assert [s["id"] for s in listed] == ["a", "b"]
    assert (await client.delete("/api/segments/b", headers=admin_headers)).status_code == 204
    assert (await client.get("/api/segments/b", headers=admin_headers)).status_code == 404


async def test_computed_traits_from_analytics(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from omnicx.analytics.service import patch_traits
    from omnicx.hooks import ALL_PROFILES

    hooks = app.state.hooks
    await define(
        client, admin_headers, "likely-buyers", {"computed": "p_alive", "op": "gte", "value": 0.8}
    )
    await send_ok(client, write_key, "identify", userId="ida", traits={"p_alive": 0.99})
    await drain(db, hooks, utcnow())
    assert await members(client, admin_headers, "likely-buyers") == set()  # a trait is not it
    ida = await profile_id(client, admin_headers, "user_id:ida")

    async def refresh(session: AsyncSession) -> None:
        await patch_traits(session, profile_id=ida, traits={"p_alive": 0.93}, now=utcnow())
        await hooks.changed(session, {ALL_PROFILES: {"computed": True}})

    await db.transaction(refresh)
    await drain(db, hooks, utcnow())
    assert await members(client, admin_headers, "likely-buyers") == {ida}
