"""Edges: rate limits per write key and per token (429 + Retry-After, across processes on
PostgreSQL through the shared table), request size limits, security headers on the console."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from omnicx.app import create_app
from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.ops.ratelimit import Limit, Limiter, limit_for
from omnicx.settings import Settings
from tests.conftest import new_token, new_write_key


async def _client(settings: Settings, db: Database) -> httpx.AsyncClient:
    app = create_app(settings, database=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://omnicx.test")


@pytest.fixture
async def limited(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    tight = settings.model_copy(update={"rate_limit_ingest": 3, "rate_limit_api": 2})
    async with await _client(tight, db) as client:
        yield client


async def test_ingest_is_limited_per_write_key(limited: httpx.AsyncClient, db: Database) -> None:
    key, other = await new_write_key(db, "a"), await new_write_key(db, "b")

    async def track(write_key: str, i: int) -> httpx.Response:
        body = {"userId": "u", "event": "E", "messageId": f"{write_key[-6:]}-{i}"}
        return await limited.post("/v1/track", json=body, auth=(write_key, ""))

    # Seven at once: whatever second they fall in, one window sees more than three.
    responses = await asyncio.gather(*(track(key, i) for i in range(7)))
    refused = [r for r in responses if r.status_code == 429]
    assert refused and all(r.status_code in (200, 429) for r in responses)
    assert int(refused[0].headers["retry-after"]) >= 1
    assert refused[0].json()["error"]["code"] == "rate_limited"
    assert refused[0].json()["code"] == "rate_limited"  # the SDKs' shape on /v1
    assert (await track(other, 0)).status_code in (200, 429)  # its own window, not key's
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) <= 6


async def test_api_is_limited_per_token(limited: httpx.AsyncClient, db: Database) -> None:
    token, other = await new_token(db, Role.admin), await new_token(db, Role.admin)
    statuses = []
    for _ in range(5):  # at most one minute boundary in between: some window gets three
        response = await limited.get("/api/stores", headers={"Authorization": f"Bearer {token}"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.json()["error"]["code"] == "rate_limited"
            break
    assert statuses[-1] == 429, statuses
    fresh = await limited.get("/api/stores", headers={"Authorization": f"Bearer {other}"})
    assert fresh.status_code == 200


async def test_the_window_is_shared_by_every_limiter_of_the_database(
    settings: Settings, db: Database
) -> None:
    """Two processes' limiters count together on PostgreSQL; SQLite (one process) keeps its own."""
    first, second = Limiter(db), Limiter(Database(settings))
    limit = Limit("api", "api:shared", 3, 60)
    now = 1_000_040.0  # 20 s into the window that began at 1_000_020
    waits = [await (first if i % 2 else second).hit(limit, now) for i in range(4)]
    if db.dialect == "postgresql":
        assert waits == [0, 0, 0, 40]
    else:
        assert waits == [0, 0, 0, 0]  # two counts of two
        assert [await first.hit(limit, now) for _ in range(2)] == [0, 40]
    assert await first.hit(limit, now + 40) == 0  # the next window starts afresh
    await second.db.dispose()


def test_which_limit_a_request_counts_against() -> None:
    basic = "Basic " + __import__("base64").b64encode(b"wk_abc:").decode()
    ingest = limit_for("/v1/batch", basic, "10.0.0.1", ingest=5, api=9)
    assert ingest is not None and ingest.per == 5 and ingest.seconds == 1
    assert "wk_abc" not in ingest.key  # the secret is not stored
    in_body = limit_for("/v1/track", "", "10.0.0.1", ingest=5, api=9)
    assert in_body is not None and in_body.key == "ingest:ip:10.0.0.1"
    api = limit_for("/api/stores", "Bearer ocx_t", "x", ingest=5, api=9)
    assert api is not None and api.seconds == 60 and api.per == 9
    assert limit_for("/api/stores", "", "x", ingest=5, api=9) is None  # 401 anyway
    assert limit_for("/v1/track", basic, "x", ingest=0, api=9) is None  # turned off
    assert limit_for("/healthz", basic, "x", ingest=5, api=9) is None


async def test_request_bodies_are_capped_everywhere(settings: Settings, db: Database) -> None:
    small = settings.model_copy(update={"max_request_bytes": 2048})
    headers = {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}
    async with await _client(small, db) as client:
        big = {"name": "x" * 4000}
        declared = await client.put("/api/stores/s1", json=big, headers=headers)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        streamed = await client.put(
            "/api/stores/s1",
            content=chunks(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert (await client.get("/api/stores/s1/pickups", headers=headers)).status_code in (
            200,
            404,
        )
        stores = (await client.get("/api/stores", headers=headers)).json()
        assert all(s.get("id") != "s1" for s in stores)  # nothing was written


async def test_console_responses_carry_security_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    api = await client.get("/healthz")
    assert "content-security-policy" not in api.headers
    assert api.headers["x-content-type-options"] == "nosniff"
