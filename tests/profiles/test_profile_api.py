"""The profile API: timeline paging and filters, consent, search, contact points."""

from __future__ import annotations

import httpx

from omnicx.auth.service import Role
from omnicx.db import Database
from tests.conftest import new_token
from tests.helpers import profile, send_ok, timeline


async def test_timeline_pages_newest_first_with_filters(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    for minute in range(7):
        await send_ok(
            client,
            write_key,
            "track",
            userId="pager",
            event=f"E{minute % 2}",
            properties={"minute": minute},
            timestamp=f"2026-05-01T10:0{minute}:00Z",
        )
    await send_ok(
        client, write_key, "page", userId="pager", name="Home", timestamp="2026-05-01T09:00:00Z"
    )
    seen: list[int] = []
    before = None
    while True:
        params = {"limit": 3, **({"before": before} if before else {})}
        response = await client.get(
            "/api/profiles/user_id:pager/events", params=params, headers=admin_headers
        )
        page = response.json()
        seen += [item["properties"].get("minute", -1) for item in page["items"]]
        before = page["next"]
        if before is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0, -1]
    assert [
        e["type"] for e in await timeline(client, admin_headers, "user_id:pager", type="page")
    ] == ["page"]
    odd = await timeline(client, admin_headers, "user_id:pager", event="E1")
    assert [e["properties"]["minute"] for e in odd] == [5, 3, 1]
    older = await timeline(client, admin_headers, "user_id:pager", before="2026-05-01T10:02:00Z")
    assert [e["properties"].get("minute", -1) for e in older] == [1, 0, -1]
    item = odd[0]
    assert set(item) >= {
        "message_id",
        "type",
        "event",
        "timestamp",
        "received_at",
        "properties",
        "source",
    }
    assert item["source"] == "web"


async def test_consent_from_events_and_from_the_api(
    client: httpx.AsyncClient, write_key: str, db: Database
) -> None:
    agent = {"Authorization": f"Bearer {await new_token(db, Role.agent)}"}
    await send_ok(
        client,
        write_key,
        "identify",
        userId="c-1",
        timestamp="2026-01-01T00:00:00Z",
        context={
            "consent": {
                "email": {"marketing": True, "newsletter": False},
                "sms": True,
                "categoryPreferences": {"Advertising": False},
            }
        },
    )
    p = await profile(client, agent, "user_id:c-1")
    got = {(c["channel"], c["topic"]): c["status"] for c in p["consents"]}
    assert got == {
        ("email", "marketing"): "granted",
        ("email", "newsletter"): "denied",
        ("sms", "all"): "granted",
        ("all", "Advertising"): "denied",
    }

    response = await client.put(
        "/api/profiles/user_id:c-1/consent",
        headers=agent,
        json={
            "consents": [{"channel": "email", "topic": "marketing", "status": "denied"}],
            "source": "phone call",
        },
    )
    assert response.status_code == 200, response.text
    consent = next(c for c in response.json()["consents"] if c["topic"] == "marketing")
    assert consent["status"] == "denied"
    assert consent["source"] == "phone call (agent-test)"

    # An older event cannot undo the newer decision.
    await send_ok(
        client,
        write_key,
        "track",
        userId="c-1",
        event="Old",
        timestamp="2026-01-02T00:00:00Z",
        context={"consent": {"email": {"marketing": True}}},
    )
    p = await profile(client, agent, "user_id:c-1")
    assert {(c["channel"], c["topic"]): c["status"] for c in p["consents"]}[
        ("email", "marketing")
    ] == "denied"


async def test_search_by_identifier_and_trait(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(
        client,
        write_key,
        "identify",
        userId="s-1",
        traits={"email": "sigrid@example.com", "city": "Bergen"},
    )
    await send_ok(client, write_key, "identify", userId="s-2", traits={"city": "Tromsø"})
    for q, expected in (
        ("sigrid", {"s-1"}),
        ("SIGRID@example.com", {"s-1"}),
        ("Bergen", {"s-1"}),
        ("s-", {"s-1", "s-2"}),
        ("100%", set()),
    ):
        response = await client.get("/api/profiles", params={"q": q}, headers=admin_headers)
        assert response.status_code == 200, response.text
        found = {
            i["value"]
            for item in response.json()["items"]
            for i in item["identities"]
            if i["type"] == "user_id"
        }
        assert found == expected, q


async def test_contact_points_and_channels(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    from omnicx.auth.service import SourceKind
    from tests.conftest import new_write_key

    ios_key = await new_write_key(db, "ios-app", SourceKind.ios)
    await send_ok(client, write_key, "identify", userId="cp", traits={"email": "cp@example.com"})
    await send_ok(
        client,
        ios_key,
        "screen",
        userId="cp",
        name="Home",
        context={"device": {"token": "apns-token-1", "type": "ios"}},
    )
    p = await profile(client, admin_headers, "user_id:cp")
    assert {(c["kind"], c["value"]) for c in p["contact_points"]} == {
        ("email", "cp@example.com"),
        ("push_token", "apns-token-1"),
    }
    assert set(p["channels"]) == {"web", "ios"}
    assert p["channels"]["ios"]["events"] == 1
