"""Bad input gets a clear 4xx JSON error and changes nothing else (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest

from omnicx.auth.service import Role
from omnicx.db import Database
from tests.conftest import new_token
from tests.helpers import message_id, row_counts, send_ok


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


@pytest.fixture
async def baseline(client: httpx.AsyncClient, write_key: str, db: Database) -> dict[str, int]:
    """One known person, so "nothing changed" is checked against a non-empty database."""
    await send_ok(client, write_key, "identify", userId="known", traits={"email": "k@example.com"})
    return await row_counts(db)


async def test_malformed_json(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    for path in ("/v1/track", "/v1/batch"):
        response = await client.post(
            path,
            content=b'{"userId": "x", "event": ',
            auth=(write_key, ""),
            headers={"content-type": "application/json"},
        )
        _error(response, 400, "malformed_json")
    assert await row_counts(db) == baseline


async def test_missing_ids_and_required_fields(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    cases = [
        ("track", {"event": "No One"}),
        ("identify", {"traits": {"email": "a@b.co"}}),
        ("track", {"userId": "u"}),
        ("group", {"userId": "u"}),
        ("alias", {"userId": "u"}),
        ("page", {"userId": {"nested": True}}),
        ("track", {"userId": "u", "event": "x", "properties": "not an object"}),
        ("track", {"userId": "u", "event": "x", "timestamp": "yesterday"}),
    ]
    for kind, body in cases:
        response = await client.post(f"/v1/{kind}", json=body, auth=(write_key, ""))
        _error(response, 400, "invalid_event")
    response = await client.post("/v1/track", json=["not", "an", "object"], auth=(write_key, ""))
    _error(response, 400, "invalid_event")
    assert await row_counts(db) == baseline


async def test_oversize_event(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    big = {"userId": "u", "event": "Big", "properties": {"blob": "x" * 33_000}}
    _error(await client.post("/v1/track", json=big, auth=(write_key, "")), 413, "payload_too_large")
    assert await row_counts(db) == baseline


async def test_oversize_event_inside_a_batch_is_refused_alone(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    batch = [
        {
            "type": "track",
            "userId": "u",
            "event": "Big",
            "messageId": "big",
            "properties": {"blob": "x" * 33_000},
        },
        {"type": "track", "userId": "u", "event": "Small", "messageId": "small"},
        {"type": "track", "event": "Nobody", "messageId": "nobody"},
    ]
    response = await client.post("/v1/batch", json={"batch": batch}, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["messageId"], r["code"]) for r in body["rejected"]] == [
        (0, "big", "event_too_large"),
        (2, "nobody", "invalid_event"),
    ]
    after = await row_counts(db)
    assert after["events"] == baseline["events"] + 1


async def test_oversize_batches(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    too_many = [
        {"type": "track", "userId": "u", "event": "e", "messageId": str(i)} for i in range(2501)
    ]
    response = await client.post("/v1/batch", json={"batch": too_many}, auth=(write_key, ""))
    _error(response, 413, "batch_too_large")
    too_big = [
        {
            "type": "track",
            "userId": "u",
            "event": "e",
            "messageId": str(i),
            "properties": {"pad": "y" * 20_000},
        }
        for i in range(30)
    ]
    response = await client.post("/v1/batch", json={"batch": too_big}, auth=(write_key, ""))
    _error(response, 413, "payload_too_large")
    # The limit holds after decompression too: a small gzip body cannot smuggle a big batch.
    bomb = gzip.compress(orjson.dumps({"batch": too_big}))
    assert len(bomb) < 500 * 1024
    response = await client.post(
        "/v1/batch",
        content=bomb,
        auth=(write_key, ""),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    _error(response, 413, "payload_too_large")
    assert await row_counts(db) == baseline


async def test_a_batch_with_nothing_valid_is_a_400(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    response = await client.post(
        "/v1/batch", json={"batch": [{"type": "track"}, {"type": "nope"}]}, auth=(write_key, "")
    )
    error = _error(response, 400, "invalid_batch")
    assert [r["index"] for r in error["rejected"]] == [0, 1]
    response = await client.post("/v1/batch", json={"events": []}, auth=(write_key, ""))
    _error(response, 400, "invalid_batch")
    assert await row_counts(db) == baseline


async def test_gzip_bodies_are_accepted_and_bad_gzip_refused(
    client: httpx.AsyncClient, write_key: str, db: Database, baseline: dict[str, int]
) -> None:
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    response = await client.post(
        "/v1/track", content=b"not gzip at all", auth=(write_key, ""), headers=headers
    )
    _error(response, 400, "invalid_gzip")
    assert await row_counts(db) == baseline
    body = gzip.compress(
        orjson.dumps({"userId": "known", "event": "Zipped", "messageId": message_id()})
    )
    response = await client.post("/v1/track", content=body, auth=(write_key, ""), headers=headers)
    assert response.status_code == 200, response.text


async def test_wrong_or_missing_write_key(
    client: httpx.AsyncClient, db: Database, baseline: dict[str, int]
) -> None:
    event = {"userId": "u", "event": "e"}
    _error(await client.post("/v1/track", json=event), 401, "missing_write_key")
    _error(
        await client.post("/v1/track", json=event, auth=("wk_wrong", "")), 401, "invalid_write_key"
    )
    _error(
        await client.post("/v1/track", json={**event, "writeKey": "wk_wrong"}),
        401,
        "invalid_write_key",
    )
    _error(
        await client.post("/v1/track", json=event, headers={"authorization": "Basic !!!"}),
        401,
        "invalid_write_key",
    )
    # A staff token is not a write key.
    token = await new_token(db, Role.admin)
    _error(await client.post("/v1/track", json=event, auth=(token, "")), 401, "invalid_write_key")
    assert (await row_counts(db))["events"] == baseline["events"]


async def test_write_key_in_body_is_accepted(client: httpx.AsyncClient, write_key: str) -> None:
    response = await client.post(
        "/v1/track", json={"userId": "u", "event": "e", "writeKey": write_key}
    )
    assert response.status_code == 200, response.text


async def test_staff_api_refuses_missing_bad_and_wrong_tokens(
    client: httpx.AsyncClient, db: Database, baseline: dict[str, int]
) -> None:
    _error(await client.get("/api/profiles/user_id:known"), 401, "unauthenticated")
    _error(
        await client.get(
            "/api/profiles/user_id:known", headers={"Authorization": "Bearer ocx_nope"}
        ),
        401,
        "unauthenticated",
    )
    analyst = {"Authorization": f"Bearer {await new_token(db, Role.analyst)}"}
    marketer = {"Authorization": f"Bearer {await new_token(db, Role.marketer)}"}
    assert (await client.get("/api/profiles/user_id:known", headers=analyst)).status_code == 200
    before = await row_counts(db)
    _error(await client.delete("/api/profiles/user_id:known", headers=marketer), 403, "forbidden")
    _error(
        await client.get("/api/profiles/user_id:known/export", headers=analyst), 403, "forbidden"
    )
    body = {"consents": [{"channel": "email", "status": "denied"}]}
    _error(
        await client.put("/api/profiles/user_id:known/consent", json=body, headers=analyst),
        403,
        "forbidden",
    )
    assert await row_counts(db) == before


async def test_bad_query_and_body_on_staff_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database, baseline: dict[str, int]
) -> None:
    before = await row_counts(db)
    _error(
        await client.get(
            "/api/profiles/user_id:known/events?before=whenever", headers=admin_headers
        ),
        400,
        "invalid_cursor",
    )
    _error(
        await client.get("/api/profiles/user_id:known/events?limit=0", headers=admin_headers),
        422,
        "invalid_request",
    )
    _error(
        await client.get("/api/profiles/user_id:nobody", headers=admin_headers),
        404,
        "profile_not_found",
    )
    bad = {"consents": [{"channel": "email", "status": "maybe"}]}
    _error(
        await client.put("/api/profiles/user_id:known/consent", json=bad, headers=admin_headers),
        422,
        "invalid_request",
    )
    assert await row_counts(db) == before
