"""Analytics data follows merges and goes with erasure (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from omnicx.analytics import service
from omnicx.analytics.models import ComputedTraits, SurveyResponse, computed_traits_of
from omnicx.db import Database
from omnicx.profiles.models import Profile
from tests.analytics.factories import add_orders
from tests.helpers import profile, send_ok


async def count(db: Database, model: type[ComputedTraits] | type[SurveyResponse]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_survey_answers_follow_a_merge_and_go_with_erasure(
    client: httpx.AsyncClient, db: Database, write_key: str, admin_headers: dict[str, str]
) -> None:
    survey = {"survey": "csat", "score": 5, "channel": "chat"}
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="anon-1",
        event="Survey Answered",
        properties=survey,
        timestamp="2024-03-01T10:00:00Z",
    )
    await send_ok(
        client,
        write_key,
        "track",
        userId="u1",
        event="Survey Answered",
        properties={"survey": "nps", "score": 4},
        timestamp="2024-03-02T10:00:00Z",
    )
    await send_ok(client, write_key, "identify", userId="u1", anonymousId="anon-1")

    merged = await profile(client, admin_headers, "user_id:u1")
    traits = (
        await client.get(f"/api/analytics/profiles/{merged['id']}/traits", headers=admin_headers)
    ).json()["traits"]
    assert (traits["csat_last"], traits["nps_last"], traits["nps_category"]) == (
        5,
        4,
        "detractor",
    )
    async with db.session() as session:
        owners = set((await session.execute(select(SurveyResponse.profile_id))).scalars())
    assert owners == {merged["id"]}

    await add_orders(db, [(merged["id"], datetime(2024, 3, 3, tzinfo=UTC), 30.0)])
    await service.refresh_now(db, db.settings, now=datetime(2024, 4, 1, tzinfo=UTC))
    traits = (
        await client.get("/api/analytics/profiles/user_id:u1/traits", headers=admin_headers)
    ).json()["traits"]
    assert traits["clv_historical"] == 30.0 and traits["csat_last"] == 5  # both kinds kept

    erased = await client.delete("/api/profiles/user_id:u1", headers=admin_headers)
    assert erased.status_code == 200, erased.text
    assert await count(db, SurveyResponse) == 0
    assert await count(db, ComputedTraits) == 0


async def test_computed_traits_are_queryable_from_profiles(
    client: httpx.AsyncClient, db: Database, write_key: str, admin_headers: dict[str, str]
) -> None:
    for user in ("u1", "u2"):
        await send_ok(client, write_key, "identify", userId=user, traits={"plan": "gold"})
    ids = {u: (await profile(client, admin_headers, f"user_id:{u}"))["id"] for u in ("u1", "u2")}
    await add_orders(db, [(ids["u1"], datetime(2024, 3, 3, tzinfo=UTC), 30.0)])
    await service.refresh_now(db, db.settings, now=datetime(2024, 4, 1, tzinfo=UTC))
    traits = computed_traits_of(Profile.id)
    async with db.session() as session:
        rich = await session.execute(
            select(Profile.id).where(traits["clv_historical"].as_float() >= 30)
        )
        assert list(rich.scalars()) == [ids["u1"]]
        segments = await session.execute(
            select(Profile.id, traits["rfm_segment"].as_string()).order_by(Profile.id)
        )
        assert dict(segments.all()) == {ids["u1"]: "hibernating", ids["u2"]: None}  # 1 of 1: lowest
