"""In-app: a connected app client receives the message live (WebSocket and SSE, through a real
uvicorn server with its embedded worker); read state persists across a restart; only the signed
user reaches their inbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.messaging.signing import inapp_key, user_hash
from omnicx.settings import Settings
from tests.conftest import SECRET, new_token
from tests.live_server import LiveServer
from tests.messaging.factories import BRAND, SALE

WAIT = 20.0  # a bound on how long a broken test hangs, not a timing assertion


@pytest.fixture
def server(database_url: str, db: Database) -> Iterator[LiveServer]:
    live = LiveServer(database_url, env={"OMNICX_WORKER_POLL_SECONDS": "0.05"})
    with live:
        yield live


def app_auth(user_id: str, write_key: str) -> dict[str, str]:
    digest = user_hash(inapp_key(Settings(secret_key=SECRET)), user_id)
    return {"write_key": write_key, "user_id": user_id, "user_hash": digest}


def headers_for(auth: dict[str, str]) -> dict[str, str]:
    return {
        "X-OmniCX-Write-Key": auth["write_key"],
        "X-OmniCX-User-Id": auth["user_id"],
        "X-OmniCX-User-Hash": auth["user_hash"],
    }


async def prepare(http: httpx.AsyncClient, db: Database) -> tuple[str, dict[str, str]]:
    from tests.conftest import new_write_key

    write_key = await new_write_key(db)
    admin = {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}
    assert (await http.put("/api/brand", json=BRAND, headers=admin)).status_code == 200
    response = await http.put("/api/templates/spring-sale", json=SALE, headers=admin)
    assert response.status_code == 201, response.text
    identify = {
        "userId": "u-1",
        "traits": {"first_name": "Ana"},
        "context": {"consent": {"inapp": True}},
    }
    assert (await http.post("/v1/identify", json=identify, auth=(write_key, ""))).status_code == 200
    return write_key, admin


async def send(http: httpx.AsyncClient, admin: dict[str, str], product: str) -> dict[str, Any]:
    response = await http.post(
        "/api/messages",
        json={
            "to": "user_id:u-1",
            "message": "spring-sale",
            "channel": "inapp",
            "data": {"product": product},
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
async def test_connected_client_receives_live_and_read_state_persists(
    server: LiveServer, db: Database
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        write_key, admin = await prepare(http, db)
        auth = app_auth("u-1", write_key)
        query = "&".join(f"{k}={v}" for k, v in auth.items())
        ws_url = server.url.replace("http", "ws") + f"/api/inapp/ws?{query}"
        async with connect(ws_url) as ws:
            sent = await send(http, admin, "Alpine jacket")
            card = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert card["id"] == sent["id"]
        assert card["title"] == "10% off today"
        assert card["body"] == "The Alpine jacket is waiting, Ana."
        assert card["state"] == "unread"

        status = (await http.get(f"/api/messages/{sent['id']}", headers=admin)).json()
        while status["status"] == "sending":  # the worker records after the push
            await asyncio.sleep(0.05)
            status = (await http.get(f"/api/messages/{sent['id']}", headers=admin)).json()
        assert status["status"] == "delivered"

        inbox = (await http.get("/api/inapp/messages", headers=headers_for(auth))).json()
        assert inbox["unread"] == 1 and [i["id"] for i in inbox["items"]] == [sent["id"]]
        read = await http.patch(
            f"/api/inapp/messages/{sent['id']}", json={"state": "read"}, headers=headers_for(auth)
        )
        assert read.status_code == 200 and read.json()["state"] == "read"

    server.restart()
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        inbox = (await http.get("/api/inapp/messages", headers=headers_for(auth))).json()
        assert inbox["unread"] == 0 and inbox["items"][0]["state"] == "read"
        record = (await http.get(f"/api/messages/{sent['id']}", headers=admin)).json()
        assert record["status"] == "opened"

        # Server-sent events carry the next one, for clients without WebSocket.
        async with http.stream("GET", "/api/inapp/stream", params=auth) as stream:
            lines = stream.aiter_lines()
            assert await asyncio.wait_for(anext(lines), WAIT) == ": connected"
            second = await send(http, admin, "wool beanie")
            data = ""
            while not data:
                line = await asyncio.wait_for(anext(lines), WAIT)
                data = line.removeprefix("data: ") if line.startswith("data: ") else ""
        assert json.loads(data)["id"] == second["id"]

        dismissed = await http.patch(
            f"/api/inapp/messages/{second['id']}",
            json={"state": "dismissed"},
            headers=headers_for(auth),
        )
        assert dismissed.status_code == 200
        inbox = (await http.get("/api/inapp/messages", headers=headers_for(auth))).json()
        assert [i["id"] for i in inbox["items"]] == [sent["id"]]


async def test_only_the_signed_user_reaches_an_inbox(
    client: httpx.AsyncClient, db: Database, write_key: str, admin_headers: dict[str, str]
) -> None:
    await client.put("/api/brand", json=BRAND, headers=admin_headers)
    await client.put("/api/templates/spring-sale", json=SALE, headers=admin_headers)
    for user in ("u-1", "u-2"):
        body = {"userId": user, "context": {"consent": {"inapp": True}}}
        assert (
            await client.post("/v1/identify", json=body, auth=(write_key, ""))
        ).status_code == 200
    sent = await client.post(
        "/api/messages",
        json={
            "to": "user_id:u-1",
            "message": "spring-sale",
            "channel": "inapp",
            "data": {"product": "tent"},
        },
        headers=admin_headers,
    )
    message_id = sent.json()["id"]
    good = app_auth("u-1", write_key)
    forged = {**good, "user_hash": app_auth("u-2", write_key)["user_hash"]}
    refusals = [
        {},
        headers_for(forged),
        headers_for({**good, "write_key": "wk_unknown"}),
        admin_headers,  # a staff token is not an app user
    ]
    for headers in refusals:
        response = await client.get("/api/inapp/messages", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "unauthenticated"
    other = headers_for(app_auth("u-2", write_key))
    assert (await client.get("/api/inapp/messages", headers=other)).json()["items"] == []
    response = await client.patch(
        f"/api/inapp/messages/{message_id}", json={"state": "read"}, headers=other
    )
    assert response.status_code == 404
    bad_state = await client.patch(
        f"/api/inapp/messages/{message_id}", json={"state": "eaten"}, headers=headers_for(good)
    )
    assert bad_state.status_code == 422
    js = await client.get("/m/inapp.js")
    assert js.status_code == 200 and "OmniCXInbox" in js.text
