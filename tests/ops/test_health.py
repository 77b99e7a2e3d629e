"""Liveness, readiness, Prometheus metrics, request ids and JSON logs."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest
from sqlalchemy import text

from omnicx.db import Database
from omnicx.ops.logs import REQUEST_ID, JsonFormatter
from tests.conftest import new_write_key


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok"}}


async def test_readyz_reports_a_missing_migration(client: httpx.AsyncClient, db: Database) -> None:
    async with db.engine.begin() as conn:
        heads = list(
            (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
        )
        await conn.execute(
            text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": heads[0]}
        )
    try:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["migrations"] == f"pending: {heads[0]}"
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": heads[0]})


def _value(body: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def test_metrics_count_ingest_and_read_queues(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = await new_write_key(db)
    before = (await client.get("/metrics")).text
    for i in range(3):
        ok = await client.post(
            "/v1/track",
            json={"userId": "u1", "event": "Viewed", "messageId": f"m{i}"},
            auth=(key, ""),
        )
        assert ok.status_code == 200, ok.text
    await client.post(
        "/v1/track", json={"userId": "u1", "event": "Viewed", "messageId": "m0"}, auth=(key, "")
    )
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    stored = 'omnicx_ingest_events_total{outcome="stored"}'
    assert (
        _value(after, "omnicx_ingest_events_total", outcome="stored")
        - _value(before, "omnicx_ingest_events_total", outcome="stored")
        == 3
    ), stored
    assert (
        _value(after, "omnicx_ingest_events_total", outcome="duplicate")
        - _value(before, "omnicx_ingest_events_total", outcome="duplicate")
        == 1
    )
    # Scrape-time gauges come from the database: the segment work queue holds the touched profile.
    assert "omnicx_segment_work_queue" in after
    assert "omnicx_timers_oldest_due_seconds" in after
    assert "omnicx_websocket_connections" in after
    assert 'omnicx_http_requests_total{method="POST",route="/v1/track",status="2xx"}' in after


async def test_request_id_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("omnicx.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.status = 201
    token = REQUEST_ID.set("req-9")
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "hello you"
    assert line["request_id"] == "req-9"
    assert line["status"] == 201
    assert line["level"] == "info"


async def test_access_log_is_json_with_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="omnicx.access"):
        await client.get("/healthz", headers={"X-Request-ID": "trace-1"})
    records = [r for r in caplog.records if r.name == "omnicx.access"]
    assert records
    line = orjson.loads(JsonFormatter().format(records[-1]))
    assert line["status"] == 200
    assert line["request_id"] == "trace-1"
    assert "duration_ms" in line
