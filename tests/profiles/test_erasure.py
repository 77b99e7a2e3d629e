"""GDPR export and erasure: nothing personal left anywhere, later events refused and counted."""

from __future__ import annotations

import httpx
from sqlalchemy import select, text

from omnicx.db import Database
from omnicx.models import Base
from omnicx.profiles.models import Event, Suppression
from tests.helpers import profile, send, send_ok

PII = [
    "erin-42",
    "anon-erin",
    "anon-erin-phone",
    "erin@example.com",
    "Erin@Example.com",
    "+14155550142",
    "Erin Quist",
    "Quist",
    "LOYAL-9911",
    "fcm-token-erin",
    "Fjordgata 7",
    "https://push.example.com/erin-sub",
]


async def _seed_erin(client: httpx.AsyncClient, write_key: str) -> None:
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="anon-erin",
        event="Product Viewed",
        properties={"note": "Erin Quist browsing"},
    )
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="anon-erin-phone",
        event="App Opened",
        context={
            "device": {"token": "fcm-token-erin", "type": "android"},
            "pushSubscription": {
                "endpoint": "https://push.example.com/erin-sub",
                "keys": {"p256dh": "k", "auth": "a"},
            },
        },
    )
    await send_ok(
        client,
        write_key,
        "identify",
        userId="erin-42",
        anonymousId="anon-erin",
        traits={
            "email": "Erin@Example.com",
            "phone": "+1 415 555 0142",
            "name": "Erin Quist",
            "address": {"street": "Fjordgata 7"},
        },
        context={"consent": {"email": {"marketing": True}}},
    )
    await send_ok(
        client,
        write_key,
        "identify",
        userId="erin-42",
        anonymousId="anon-erin-phone",
        context={"externalIds": [{"id": "LOYAL-9911", "type": "loyalty_card"}]},
    )


async def _dump_every_table(db: Database) -> str:
    parts = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            parts.append(f"{table.name}: {[tuple(r) for r in rows]!r}")
    return "\n".join(parts)


async def test_export_holds_everything_about_the_person(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await _seed_erin(client, write_key)
    response = await client.get("/api/profiles/user_id:erin-42/export", headers=admin_headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["profile"]["traits"]["name"] == "Erin Quist"
    assert {e["event"] for e in data["events"]} >= {"Product Viewed", "App Opened"}
    assert len(data["events"]) == 4
    assert {c["kind"] for c in data["profile"]["contact_points"]} == {
        "email",
        "phone",
        "push_token",
        "webpush",
    }
    assert data["profile"]["consents"][0]["status"] == "granted"
    assert len(data["merges"]) == 1


async def test_erasure_leaves_no_personal_data_and_refuses_later_events(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await _seed_erin(client, write_key)
    await send_ok(
        client,
        write_key,
        "identify",
        userId="someone-else",
        traits={"email": "other@example.com", "name": "Other Person"},
    )
    dump = await _dump_every_table(db)
    assert [value for value in PII if value not in dump] == []  # the scan can see them

    response = await client.delete("/api/profiles/email:erin@example.com", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["identifiers_suppressed"] >= 7

    dump = await _dump_every_table(db)
    leaked = [value for value in PII if value.lower() in dump.lower()]
    assert leaked == []
    assert "Other Person" in dump  # somebody else's data is untouched

    # Anonymised aggregates stay: the events still count, without a person behind them.
    async with db.session() as session:
        names = sorted(
            (
                await session.execute(select(Event.event).where(Event.profile_id.is_(None)))
            ).scalars(),
            key=str,
        )
    assert names == sorted(["Product Viewed", "App Opened", None, None], key=str)

    for external_id in ("user_id:erin-42", "email:erin@example.com", "anonymous_id:anon-erin"):
        assert (
            await client.get(f"/api/profiles/{external_id}", headers=admin_headers)
        ).status_code == 404

    refused = await send(client, write_key, "track", userId="erin-42", event="Came Back")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "identity_suppressed"
    batch = [
        {
            "type": "identify",
            "anonymousId": "new-device",
            "traits": {"email": "ERIN@example.com"},
            "messageId": "b1",
        },
        {"type": "track", "userId": "someone-else", "event": "Fine", "messageId": "b2"},
    ]
    response = await client.post("/v1/batch", json={"batch": batch}, auth=(write_key, ""))
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
        (0, "identity_suppressed")
    ]
    async with db.session() as session:
        refusals = sum((await session.execute(select(Suppression.refused_count))).scalars())
        stored = (await session.execute(text("SELECT count(*) FROM events"))).scalar_one()
    assert refusals == 2
    assert stored == 6  # 4 of Erin's, anonymised, + 2 of the other person
    assert (await profile(client, admin_headers, "user_id:someone-else"))["traits"]["name"] == (
        "Other Person"
    )
