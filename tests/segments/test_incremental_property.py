"""Property: for random event streams, incremental membership equals a full recompute."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from omnicx.app import create_app
from omnicx.auth.service import Role
from omnicx.db import Database, utcnow
from omnicx.segments.engine import load, members_by_query
from omnicx.segments.models import SegmentMembership
from omnicx.settings import Settings
from tests.conftest import SECRET, new_token, new_write_key, truncate
from tests.segments.factories import drain

SEGMENTS: dict[str, dict[str, Any]] = {
    "viewers-2": {"event": "Product Viewed", "count": {"gte": 2}, "within": "1d"},
    "at-most-one": {"event": "Product Viewed", "count": {"lte": 1}, "within": "12h"},
    "abandoners": {
        "event": "Product Added",
        "within": "2d",
        "not_followed_by": {"event": "Order Completed", "within": "1h"},
    },
    "gold": {"trait": "tier", "op": "equals", "value": "gold"},
    "spenders": {"commerce": "total_spent", "op": "gte", "value": 100, "within": "1d"},
    "lapsed": {"commerce": "last_order", "op": "more_than_days_ago", "value": 1},
    "gold-spenders": {"and": [{"segment": "gold"}, {"segment": "spenders"}]},
    "not-gold-viewers": {"and": [{"not": {"segment": "gold"}}, {"segment": "viewers-2"}]},
}
KINDS = ("view", "add", "order", "gold", "silver")

step = st.tuples(
    st.integers(0, 3),  # which person
    st.sampled_from(KINDS),
    st.integers(0, 3000),  # minutes before the start
    st.integers(1, 200),  # order total
)
streams = st.lists(step, min_size=1, max_size=25)
checks = st.lists(st.integers(1, 3000), min_size=1, max_size=3)  # minutes after the start


def _event(n: int, step: tuple[int, str, int, int], base: Any) -> dict[str, Any]:
    person, kind, minutes, total = step
    event: dict[str, Any] = {
        "userId": f"p{person}",
        "messageId": f"m{n}",
        "timestamp": (base - timedelta(minutes=minutes)).isoformat(),
    }
    if kind in ("gold", "silver"):
        return {**event, "type": "identify", "traits": {"tier": kind}}
    name = {"view": "Product Viewed", "add": "Product Added", "order": "Order Completed"}[kind]
    props = {"order_id": f"o{n}", "total": total} if kind == "order" else {"product_id": "x"}
    return {**event, "type": "track", "event": name, "properties": props}


async def _scenario(database_url: str, stream: list[Any], check_offsets: list[int]) -> None:
    db = Database(Settings(database_url=database_url, env="test", secret_key=SECRET))
    try:
        await truncate(db)
        app = create_app(database=db)
        hooks = app.state.hooks
        write_key = await new_write_key(db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            admin = {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}
            for sid, definition in SEGMENTS.items():
                response = await client.post(
                    "/api/segments",
                    headers=admin,
                    json={"id": sid, "name": sid, "definition": definition},
                )
                assert response.status_code == 201, response.text
            base = utcnow()
            await drain(db, hooks, base)
            events = [_event(n, s, base) for n, s in enumerate(stream)]
            for start in range(0, len(events), 7):
                response = await client.post(
                    "/v1/batch", json={"batch": events[start : start + 7]}, auth=(write_key, "")
                )
                assert response.status_code == 200, response.text
                await drain(db, hooks, base)
            for offset in sorted(check_offsets):
                now = base + timedelta(minutes=offset)
                await drain(db, hooks, now)
                async with db.session() as session:
                    for seg in await load(session):
                        expected = set(await members_by_query(session, seg, now))
                        actual = set(
                            (
                                await session.execute(
                                    select(SegmentMembership.profile_id).where(
                                        SegmentMembership.segment_id == seg.id,
                                        SegmentMembership.active.is_(True),
                                    )
                                )
                            ).scalars()
                        )
                        assert actual == expected, (seg.id, offset)
    finally:
        await db.dispose()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=streams, check_offsets=checks)
def test_incremental_membership_equals_full_recompute(
    database_url: str, stream: list[Any], check_offsets: list[int]
) -> None:
    asyncio.run(_scenario(database_url, stream, check_offsets))
