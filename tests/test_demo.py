"""``omnicx demo``: a populated brand through the real paths, the story, and --if-empty."""

from __future__ import annotations

import re

import httpx

from omnicx.auth.service import Role
from omnicx.db import Database
from tests.cli import invoke, omnicx
from tests.conftest import new_token


async def test_demo_seeds_the_brand_and_plays_the_story(
    db: Database, database_url: str, client: httpx.AsyncClient
) -> None:
    made = await omnicx(database_url, "demo", "--customers", "30", "--if-empty")
    assert made.exit_code == 0, made.stderr
    out = made.stderr
    for login in ("admin@demo.omnicx", "store@demo.omnicx", "demo-password", "/console"):
        assert login in out
    code = re.search(r"Ana's code (\w{6})", out)
    assert code is not None, out

    headers = {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}
    ana = await client.get("/api/profiles/email:ana.berg@example.com", headers=headers)
    assert ana.status_code == 200
    assert {i["type"] for i in ana.json()["identities"]} >= {"user_id", "anonymous_id", "email"}
    orders = (await client.get("/api/profiles/user_id:ana-berg/orders", headers=headers)).json()
    pickup = orders["items"][0]["pickup"]
    assert pickup["status"] == "ready_for_pickup" and pickup["code"] == code.group(1)
    wishlist = (await client.get("/api/profiles/user_id:ana-berg/wishlist", headers=headers)).json()
    assert [w["product_id"] for w in wishlist["items"]] == ["ALP-JKT"]
    talk = await client.get("/api/profiles/user_id:ana-berg/conversations", headers=headers)
    assert talk.json()["items"][0]["handoff"]["transcript"]

    stores = (await client.get("/api/stores", headers=headers)).json()
    assert {s["id"] for s in stores} == {"oslo-1", "bergen-1", "trondheim-1"}
    journeys = (await client.get("/api/journeys", headers=headers)).json()
    assert {j["status"] for j in journeys} == {"live"} and len(journeys) == 4
    segments = (await client.get("/api/segments", headers=headers)).json()
    assert {s["id"] for s in segments} >= {"vips", "lapsed-customers", "cart-abandoners"}
    csat = (await client.get("/api/analytics/surveys/csat", headers=headers)).json()
    assert csat["summary"]["responses"] > 0
    clv = (await client.get("/api/analytics/clv", headers=headers)).json()
    assert clv["last_run"]["customers"] > 0

    again = await omnicx(database_url, "demo", "--customers", "30", "--if-empty")
    assert again.exit_code == 0 and "nothing to do" in again.stderr
    assert (await client.get("/api/stores", headers=headers)).json() == stores


def test_demo_refuses_production(database_url: str) -> None:
    production = {"OMNICX_ENV": "production", "OMNICX_SECRET_KEY": "a-real-production-secret"}
    refused = invoke(database_url, "demo", "--customers", "10", env=production)
    assert refused.exit_code == 1 and "production" in refused.stderr
