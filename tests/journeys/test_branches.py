"""Branches (segment conditions and the trigger's properties), trait updates, and the win-back
example's A/B split with its 10% holdout measured against the goal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database, utcnow
from omnicx.journeys import catalog, loader
from omnicx.journeys.engine import bucket
from tests.journeys.factories import drain, journey, messages, runs, stats, template, track

TIERS = {
    "entry": {"event": "Checkout Started"},
    "nodes": [
        {
            "id": "route",
            "type": "branch",
            "branches": [
                {
                    "name": "gold",
                    "when": {"trait": "tier", "op": "equals", "value": "gold"},
                    "next": "vip",
                },
                {
                    "name": "big-cart",
                    "context": [{"property": "value", "op": "gte", "value": 100}],
                    "next": "big",
                },
            ],
            "default": "tag",
        },
        {"id": "vip", "type": "send", "message": "vip", "channel": "inapp", "next": None},
        {"id": "big", "type": "send", "message": "big", "channel": "inapp", "next": None},
        {"id": "tag", "type": "update_traits", "set": {"nurture": True, "tier": "bronze"}},
        {"id": "done", "type": "exit"},
    ],
}


async def test_first_matching_branch_wins_and_traits_are_set(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h = admin_headers
    for name in ("vip", "big"):
        await template(client, h, name)
    await journey(client, h, "tiers", TIERS)
    t0 = utcnow()
    cases = {"gold": ("gold", 500), "big": ("silver", 150), "small": ("silver", 20)}
    for user, (tier, value) in cases.items():
        response = await client.post(
            "/v1/identify",
            json={"userId": user, "traits": {"tier": tier}, "timestamp": t0.isoformat()},
            auth=(write_key, ""),
        )
        assert response.status_code == 200
        await track(client, write_key, user, "Checkout Started", t0, value=value)
    await drain(db, app.state.hooks, t0 + timedelta(seconds=1))
    outcome = {}
    for user in cases:
        [run] = await runs(client, h, f"user_id:{user}")
        outcome[user] = [(s["node"], s["outcome"]) for s in run["steps"]]
    assert outcome == {
        "gold": [("route", "gold"), ("vip", "queued")],  # gold wins though the cart is big too
        "big": [("route", "big-cart"), ("big", "queued")],
        "small": [("route", "default"), ("tag", "updated"), ("done", "exit")],
    }
    small = (await client.get("/api/profiles/user_id:small", headers=h)).json()
    assert small["traits"]["nurture"] is True and small["traits"]["tier"] == "bronze"
    [run] = await runs(client, h, "user_id:small")
    assert run["steps"][1]["detail"]["changed"] == ["nurture", "tier"]
    report = await stats(client, h, "tiers")
    assert report["nodes"]["route"]["outcomes"] == {"gold": 1, "big-cart": 1, "default": 1}


LAPSED = {
    "id": "lapsed-customers",
    "name": "Lapsed customers",
    "definition": {"commerce": "last_order", "op": "more_than_days_ago", "value": 90},
}


def expected_variant(profile_id: str) -> str:
    """The split's contract: a hash of journey, node and customer; 10% holdout, then 50/50."""
    point = bucket("win-back", "ab-test", profile_id)
    if point < 10:
        return "holdout"
    return "discount" if (point - 10) / 90 * 100 < 50 else "new-arrivals"


async def test_win_back_split_holdout_and_conversions_per_variant(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h, hooks = admin_headers, app.state.hooks
    t0 = utcnow().replace(microsecond=0)
    long_ago = (t0 - timedelta(days=200)).isoformat()
    batch: list[dict[str, Any]] = []
    people = [f"c{i:03d}" for i in range(200)]
    for user in people:
        batch.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"first_name": user},
                "context": {"consent": {"inapp": True}},
                "timestamp": long_ago,
            }
        )
        batch.append(
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "properties": {"order_id": f"O-{user}", "total": 50},
                "timestamp": long_ago,
            }
        )
    response = await client.post("/v1/batch", json={"batch": batch}, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    assert (await client.post("/api/segments", json=LAPSED, headers=h)).status_code == 201

    async def load(session: AsyncSession) -> None:
        await loader.load(session, loader.shipped(), publish=True, by="test", now=t0)

    await db.transaction(load)
    catalog.changed()
    t0 = utcnow()
    await drain(db, hooks, t0)  # the segment is computed: 200 enter it, and the journey

    variants: dict[str, str] = {}
    ids: dict[str, str] = {}
    for user in people:
        [run] = await runs(client, h, f"user_id:{user}")
        profile = (await client.get(f"/api/profiles/user_id:{user}", headers=h)).json()
        ids[user] = profile["id"]
        variants[user] = run["variant"]
        assert run["variant"] == expected_variant(profile["id"])
    counts = {v: list(variants.values()).count(v) for v in ("holdout", "discount", "new-arrivals")}
    assert 6 <= counts["holdout"] <= 40 and sum(counts.values()) == 200
    assert min(counts["discount"], counts["new-arrivals"]) >= 55

    by_profile = {m.profile_id: m.template for m in await messages(db)}
    for user, variant in variants.items():
        expected = {
            "holdout": None,
            "discount": "win-back-discount",
            "new-arrivals": "win-back-new-arrivals",
        }[variant]
        assert by_profile.get(ids[user]) == expected

    # Ten customers of each arm order after three days: the goal counts them per variant.
    buyers = {
        v: [u for u in people if variants[u] == v][:5]
        for v in ("holdout", "discount", "new-arrivals")
    }
    day3 = t0 + timedelta(days=3)
    for user in (u for group in buyers.values() for u in group):
        await track(
            client, write_key, user, "Order Completed", day3, order_id=f"N-{user}", total=80
        )
    await drain(db, hooks, day3)
    report = await stats(client, h, "win-back")
    assert {v: g["converted"] for v, g in report["variants"].items()} == {
        "holdout": 5,
        "discount": 5,
        "new-arrivals": 5,
    }
    assert report["nodes"]["ab-test"]["converted_by_outcome"] == {
        "holdout": 5,
        "discount": 5,
        "new-arrivals": 5,
    }
    # Each assignment is an exposure: the split reads as an experiment in analytics.
    response = await client.get(
        "/api/analytics/experiments/win-back:ab-test",
        params={"metric": "Order Completed", "window_days": 14},
        headers=h,
    )
    assert response.status_code == 200, response.text
    rows = {r["variation"]: r for r in response.json()["rows"]}
    assert {v: (r["exposures"], r["conversions"]) for v, r in rows.items()} == {
        v: (counts[v], 5) for v in ("holdout", "discount", "new-arrivals")
    }
    assert rows["holdout"]["revenue"] == 5 * 80
    events = (await client.get(f"/api/profiles/user_id:{people[0]}/events", headers=h)).json()
    [exposure] = [e for e in events["items"] if e["event"] == "Experiment Viewed"]
    assert exposure["properties"]["variation_id"] == variants[people[0]]
    assert exposure["properties"]["experiment_id"] == "win-back:ab-test"

    # Held-out customers stay (sent nothing) until the goal window closes, then complete.
    await drain(db, hooks, t0 + timedelta(days=15))
    report = await stats(client, h, "win-back")
    assert report["variants"]["holdout"]["active"] == 0
    assert report["variants"]["holdout"]["completed"] == counts["holdout"] - 5
    assert report["nodes"]["still-lapsed"]["outcomes"] == {
        "still-lapsed": counts["discount"] + counts["new-arrivals"] - 10
    }
    assert not any(by_profile.get(ids[u]) for u in people if variants[u] == "holdout")


async def test_webhook_node_goes_through_messaging_to_the_templates_url(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    hook = {
        "category": "transactional",
        "variants": {
            "webhook": {
                "url": "http://127.0.0.1:9/crm",
                "payload": {"customer": "{{ profile.id }}", "cart": "{{ event.cart_id }}"},
            }
        },
    }
    await template(client, admin_headers, "crm-sync", hook)
    definition = {
        "entry": {"event": "Checkout Started"},
        "nodes": [{"id": "tell-crm", "type": "webhook", "message": "crm-sync"}],
    }
    await journey(client, admin_headers, "crm", definition)
    t0 = utcnow()
    await track(client, write_key, "ana", "Checkout Started", t0, cart_id="C-9")
    await drain(db, app.state.hooks, t0)
    [message] = await messages(db)
    ana = (await client.get("/api/profiles/user_id:ana", headers=admin_headers)).json()
    assert (message.channel, message.status, message.idempotency_key) == (
        "webhook",
        "queued",
        f"journey:{(await runs(client, admin_headers, 'user_id:ana'))[0]['id']}:tell-crm:1",
    )
    assert message.to == {"kind": "url", "value": "http://127.0.0.1:9/crm", "data": {}}
    assert message.content["payload"] == {"customer": ana["id"], "cart": "C-9"}
