"""Identity resolution through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from omnicx.db import Database
from omnicx.profiles.models import Merge, Profile
from tests.helpers import profile, send, send_ok, timeline


def _ids(p: dict[str, object]) -> set[tuple[str, str]]:
    return {(i["type"], i["value"]) for i in p["identities"]}  # type: ignore[attr-defined]


async def test_anonymous_browsing_then_login_merges_history(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    await send_ok(client, write_key, "page", anonymousId="anon-1", name="Home")
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="anon-1",
        event="Product Viewed",
        properties={"sku": "ALP-JKT"},
    )
    # She already has an account from another device.
    await send_ok(
        client,
        write_key,
        "identify",
        userId="u-1",
        anonymousId="phone-1",
        traits={"email": "ana@example.com"},
    )
    await send_ok(
        client, write_key, "identify", userId="u-1", anonymousId="anon-1", traits={"name": "Ana"}
    )

    known = await profile(client, admin_headers, "user_id:u-1")
    assert (await profile(client, admin_headers, "anonymous_id:anon-1"))["id"] == known["id"]
    assert (await profile(client, admin_headers, "anonymous_id:phone-1"))["id"] == known["id"]
    assert {
        ("user_id", "u-1"),
        ("anonymous_id", "anon-1"),
        ("anonymous_id", "phone-1"),
        ("email", "ana@example.com"),
    } <= _ids(known)
    assert known["traits"] == {"email": "ana@example.com", "name": "Ana"}
    events = await timeline(client, admin_headers, "user_id:u-1")
    assert [e["event"] for e in events][::-1] == ["Home", "Product Viewed", None, None]
    assert len(known["merged_from"]) == 1
    async with db.session() as session:
        merges = list((await session.execute(select(Merge))).scalars())
    assert len(merges) == 1
    assert merges[0].into_profile_id == known["id"]
    assert merges[0].message_id is not None
    assert "user_id" in merges[0].linked_by or "anonymous_id" in merges[0].linked_by


async def test_alias_links_anonymous_to_user(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(client, write_key, "track", anonymousId="anon-9", event="Cart Viewed")
    await send_ok(client, write_key, "alias", previousId="anon-9", userId="u-9")
    p = await profile(client, admin_headers, "user_id:u-9")
    assert p["id"] == (await profile(client, admin_headers, "anonymous_id:anon-9"))["id"]
    assert [e["type"] for e in await timeline(client, admin_headers, "user_id:u-9")] == [
        "alias",
        "track",
    ]


async def test_shared_device_keeps_two_people_apart(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(
        client,
        write_key,
        "identify",
        userId="alice",
        anonymousId="tablet",
        traits={"email": "alice@example.com"},
    )
    await send_ok(
        client,
        write_key,
        "identify",
        userId="bob",
        anonymousId="tablet",
        traits={"email": "bob@example.com"},
    )
    await send_ok(client, write_key, "track", userId="bob", anonymousId="tablet", event="Bought")

    alice = await profile(client, admin_headers, "user_id:alice")
    bob = await profile(client, admin_headers, "user_id:bob")
    assert alice["id"] != bob["id"]
    assert ("anonymous_id", "tablet") in _ids(alice)
    assert ("anonymous_id", "tablet") not in _ids(bob)
    assert ("email", "bob@example.com") in _ids(bob)
    assert alice["traits"]["email"] == "alice@example.com"
    assert [e["event"] for e in await timeline(client, admin_headers, "user_id:bob")] == [
        "Bought",
        None,
    ]
    assert [e["event"] for e in await timeline(client, admin_headers, "user_id:alice")] == [None]


async def test_email_shared_by_two_user_ids_does_not_merge_them(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(
        client, write_key, "identify", userId="p1", traits={"email": "family@example.com"}
    )
    await send_ok(
        client, write_key, "identify", userId="p2", traits={"email": "family@example.com"}
    )
    first = await profile(client, admin_headers, "user_id:p1")
    second = await profile(client, admin_headers, "user_id:p2")
    assert first["id"] != second["id"]
    assert (await profile(client, admin_headers, "email:family@example.com"))["id"] == first["id"]


async def test_blocklisted_values_never_link(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    for n, junk in enumerate(
        ["undefined", "null", "0", "00000000-0000-0000-0000-000000000000", "anonymous", " ", "-1"]
    ):
        await send_ok(
            client,
            write_key,
            "identify",
            anonymousId=f"visitor-{n}",
            userId=junk,
            traits={"email": "null", "phone": "0"},
        )
    ids = {
        (await profile(client, admin_headers, f"anonymous_id:visitor-{n}"))["id"] for n in range(7)
    }
    assert len(ids) == 7
    for n in range(7):
        p = await profile(client, admin_headers, f"anonymous_id:visitor-{n}")
        assert _ids(p) == {("anonymous_id", f"visitor-{n}")}
    assert (
        await client.get("/api/profiles/user_id:undefined", headers=admin_headers)
    ).status_code == 404


async def test_an_event_with_only_junk_identifiers_is_refused(
    client: httpx.AsyncClient, write_key: str
) -> None:
    response = await send(client, write_key, "track", userId="undefined", event="x")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_identifier"


async def test_identifiers_are_normalised_and_external_ids_link(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(
        client,
        write_key,
        "identify",
        userId="u-5",
        traits={"email": "  Mixed.Case@Example.COM ", "phone": "+1 (415) 555-2671"},
    )
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="pos-visit",
        event="Store Visit",
        context={"externalIds": [{"id": "LC-777", "type": "loyalty_card"}]},
    )
    await send_ok(
        client,
        write_key,
        "track",
        userId="u-5",
        event="Card Linked",
        context={"externalIds": [{"id": "LC-777", "type": "loyalty_card"}]},
    )
    p = await profile(client, admin_headers, "email:mixed.case@example.com")
    assert p["id"] == (await profile(client, admin_headers, "phone:+14155552671"))["id"]
    assert p["id"] == (await profile(client, admin_headers, "phone:(415) 555-2671"))["id"]
    assert p["id"] == (await profile(client, admin_headers, "loyalty_card:LC-777"))["id"]
    assert p["id"] == (await profile(client, admin_headers, "anonymous_id:pos-visit"))["id"]
    assert p["id"] == (await profile(client, admin_headers, p["id"]))["id"]


async def test_concurrent_events_for_the_same_pair_make_one_merge(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    for round_ in range(3):
        user, anon = f"user-{round_}", f"device-{round_}"
        await send_ok(client, write_key, "identify", userId=user, traits={"plan": "gold"})
        await send_ok(client, write_key, "track", anonymousId=anon, event="Browse")
        responses = await asyncio.gather(
            *[
                send(client, write_key, "identify", userId=user, anonymousId=anon, traits={"n": i})
                for i in range(12)
            ]
        )
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        p = await profile(client, admin_headers, f"user_id:{user}")
        assert p["id"] == (await profile(client, admin_headers, f"anonymous_id:{anon}"))["id"]
        assert len(await timeline(client, admin_headers, f"user_id:{user}")) == 14
    async with db.session() as session:
        merges = (await session.execute(select(func.count()).select_from(Merge))).scalar_one()
        live = (
            await session.execute(
                select(func.count()).select_from(Profile).where(Profile.merged_into.is_(None))
            )
        ).scalar_one()
    assert merges == 3
    assert live == 3


async def test_later_event_time_wins_not_later_arrival(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_ok(
        client,
        write_key,
        "identify",
        userId="t-1",
        traits={"tier": "gold"},
        timestamp="2026-03-02T10:00:00Z",
    )
    await send_ok(
        client,
        write_key,
        "identify",
        userId="t-1",
        traits={"tier": "bronze", "city": "Oslo"},
        timestamp="2026-03-01T10:00:00Z",
    )
    p = await profile(client, admin_headers, "user_id:t-1")
    assert p["traits"] == {"tier": "gold", "city": "Oslo"}
    assert p["first_seen"].startswith("2026-03-01T10:00:00")
    assert p["last_seen"].startswith("2026-03-02T10:00:00")


async def test_clock_skew_is_corrected_and_received_at_kept(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    # The device clock is 2 days ahead; the event happened 5 minutes before it was sent.
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="skew",
        event="Opened",
        originalTimestamp="2030-01-03T11:55:00Z",
        sentAt="2030-01-03T12:00:00Z",
    )
    [event] = await timeline(client, admin_headers, "anonymous_id:skew")
    from datetime import datetime

    received = datetime.fromisoformat(event["received_at"])
    stamp = datetime.fromisoformat(event["timestamp"])
    assert (received - stamp).total_seconds() == 300


async def test_concurrent_first_contact_creates_one_profile(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    responses = await asyncio.gather(
        *[
            send(
                client,
                write_key,
                "identify",
                userId="newbie",
                anonymousId=f"tab-{i % 3}",
                traits={"email": "newbie@example.com"},
            )
            for i in range(12)
        ]
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    p = await profile(client, admin_headers, "email:newbie@example.com")
    assert {("anonymous_id", f"tab-{i}") for i in range(3)} <= _ids(p)
    assert len(await timeline(client, admin_headers, "user_id:newbie")) == 12
    async with db.session() as session:
        profiles = (await session.execute(select(func.count()).select_from(Profile))).scalar_one()
    assert profiles == 1
