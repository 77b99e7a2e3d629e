"""Live updates through real uvicorn servers and real WebSocket clients: the customer sees the
agent's reply in her open widget (not by push), agents see customer messages and typing, a
forged identity is refused; on PostgreSQL, a message posted through one server process reaches
a WebSocket connected to another (LISTEN/NOTIFY); the served widget, in headless Chromium,
continues a thread from a link back."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from omnicx.auth.service import Role
from omnicx.conversations import outbound, service
from omnicx.db import Database, utcnow
from omnicx.messaging.signing import inapp_key, user_hash
from tests.conftest import new_token, new_write_key
from tests.live_server import LiveServer, free_port

TIMEOUT = 10.0


ENV = {"OMNICX_EMBEDDED_WORKER": "false"}
CHROMIUM = Path(os.environ.get("OMNICX_TEST_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[LiveServer]]:
    """Server processes for the module, started side by side (each takes seconds): one on
    SQLite, two sharing the database on PostgreSQL. Each test's ``db`` fixture empties the
    tables first."""
    count = 2 if database_url.startswith("postgresql") else 1
    ports = [free_port() for _ in range(count)]
    started = [
        LiveServer(
            database_url,
            env={**ENV, "OMNICX_PUBLIC_URL": f"http://127.0.0.1:{port}"},
            port=port,
            startup_timeout=120,
        )
        for port in ports
    ]
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda s: s.__enter__(), started))
    try:
        yield started
    finally:
        for live in started:
            live.close()


@pytest.fixture
def server(servers: list[LiveServer]) -> LiveServer:
    return servers[0]


def ws_url(server: LiveServer, path: str, **params: str) -> str:
    return f"ws://{server.host}:{server.port}{path}?{urlencode(params)}"


async def next_event(ws: ClientConnection, kind: str, author: str | None = None) -> dict[str, Any]:
    """The next event of type ``kind`` (by ``author``, for messages); others are skipped, as
    clients skip a message id they already have."""
    while True:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if event["type"] == kind and (author is None or event["message"]["author"] == author):
            return event


async def test_agent_reply_reaches_the_open_widget_live(server: LiveServer, db: Database) -> None:
    key = await new_write_key(db, "website")
    agent = {"Authorization": f"Bearer {await new_token(db, Role.agent)}"}
    token = agent["Authorization"].split()[1]
    hashed = user_hash(inapp_key(db.settings), "u-7")
    customer_url = ws_url(server, "/c/ws", write_key=key, user_id="u-7", user_hash=hashed)
    async with (
        websockets.connect(ws_url(server, "/api/conversations/ws", token=token)) as staff,
        websockets.connect(customer_url) as customer,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        assert (await next_event(staff, "ready"))["all"] is True
        ready = await next_event(customer, "ready")
        assert ready["conversation"] is None and ready["messages"] == []

        await customer.send(json.dumps({"type": "message", "body": "Hello, I need a person"}))
        mine = await next_event(customer, "message")
        assert mine["message"]["author"] == "customer"
        seen_by_staff = await next_event(staff, "message")
        assert seen_by_staff["message"]["body"] == "Hello, I need a person"
        cid = mine["conversation_id"]
        assignment = await next_event(staff, "status")
        assert assignment["conversation_id"] == cid and assignment["status"] == "queued"

        await customer.send(json.dumps({"type": "typing"}))
        typing = await next_event(staff, "typing")
        assert (typing["conversation_id"], typing["author"]) == (cid, "customer")

        note = await http.post(
            f"/api/conversations/{cid}/messages",
            json={"body": "VIP customer, be nice", "internal": True},
            headers=agent,
        )
        assert note.status_code == 201
        reply = await http.post(
            f"/api/conversations/{cid}/messages",
            json={"body": "Hi! I'm here. How can I help?"},
            headers=agent,
        )
        assert reply.status_code == 201 and reply.json()["delivery"] == "live"
        shown = await next_event(customer, "message", author="agent")
        # The internal note was never sent to her: the first staff message she gets is the reply.
        assert shown["message"]["body"] == "Hi! I'm here. How can I help?"
        assert shown["message"]["author"] == "agent"

    forged = ws_url(server, "/c/ws", write_key=key, user_id="u-7", user_hash="0" * 64)
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(forged) as ws:
            await ws.recv()


async def test_flood_and_oversize_over_the_socket_are_refused(
    server: LiveServer, db: Database
) -> None:
    key = await new_write_key(db, "website")
    url = ws_url(server, "/c/ws", write_key=key, anonymous_id="anon-flood")
    async with websockets.connect(url) as customer:
        await next_event(customer, "ready")
        await customer.send(json.dumps({"type": "message", "body": "x" * 5000}))
        error = await next_event(customer, "error")
        assert error["code"] == "message_too_large"
        codes: list[str] = []
        for i in range(25):
            await customer.send(json.dumps({"type": "message", "body": f"hello {i}"}))
        while len(codes) < 5:
            event = json.loads(await asyncio.wait_for(customer.recv(), TIMEOUT))
            if event["type"] == "error":
                codes.append(event["code"])
        assert set(codes) == {"rate_limited"}


async def test_two_processes_share_live_updates_through_postgres(
    database_url: str, db: Database, servers: list[LiveServer]
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share live updates on PostgreSQL (LISTEN/NOTIFY)")
    key = await new_write_key(db, "website")
    agent = {"Authorization": f"Bearer {await new_token(db, Role.agent)}"}
    one, two = servers
    hashed = user_hash(inapp_key(db.settings), "u-9")
    url = ws_url(one, "/c/ws", write_key=key, user_id="u-9", user_hash=hashed)
    async with (
        websockets.connect(url) as customer,
        websockets.connect(
            ws_url(two, "/api/conversations/ws", token=agent["Authorization"].split()[1])
        ) as staff,
        httpx.AsyncClient(base_url=two.url) as http,
    ):
        await next_event(customer, "ready")
        await next_event(staff, "ready")
        await customer.send(json.dumps({"type": "message", "body": "agent please"}))
        cid = (await next_event(customer, "message"))["conversation_id"]
        # Written by process one, seen on a socket of process two.
        assert (await next_event(staff, "message"))["message"]["body"] == "agent please"

        reply = await http.post(
            f"/api/conversations/{cid}/messages",
            json={"body": "Answered from the other process"},
            headers=agent,
        )
        assert reply.status_code == 201
        # Written by process two, seen on her socket on process one.
        got = await next_event(customer, "message", author="agent")
        assert got["message"]["body"] == "Answered from the other process"


def _chat_in_chromium(page_url: str, text: str) -> list[str]:
    """Open the thread page in headless Chromium, send ``text`` through the widget, and return
    the messages the widget shows once its own message came back over the socket."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(page_url)
            page.locator("#omnicx-chat .omnicx-bot").first.wait_for()
            page.locator("#omnicx-chat input").fill(text)
            page.locator("#omnicx-chat input").press("Enter")
            page.locator("#omnicx-chat .omnicx-customer", has_text=text).wait_for()
            return [str(t) for t in page.locator("#omnicx-chat .omnicx-msg").all_inner_texts()]
        finally:
            browser.close()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing")
async def test_the_widget_in_a_browser_continues_the_thread_from_a_link(
    server: LiveServer, db: Database
) -> None:
    key = await new_write_key(db, "website")
    async with httpx.AsyncClient(base_url=server.url) as http:
        first = await http.post(
            "/c/messages",
            json={"body": "do you have the alpine jacket?"},
            headers={"X-OmniCX-Write-Key": key, "X-OmniCX-Anonymous-Id": "anon-browser"},
        )
        cid = first.json()["items"][0]["conversation_id"]
        async with db.session() as session:
            conversation = await service.get(session, conversation_id=cid)
            assert conversation is not None
            token = outbound.make_token(db.settings, "t", conversation, utcnow())
        shown = await asyncio.to_thread(
            _chat_in_chromium, f"{server.url}/c/t/{token}?write_key={key}", "Hello from Chromium"
        )
        assert shown[0] == "do you have the alpine jacket?"
        assert "Hello from Chromium" in shown
        thread = await http.get(
            "/c/conversation", headers={"X-OmniCX-Write-Key": key, "X-OmniCX-Thread": token}
        )
        bodies = [m["body"] for m in thread.json()["messages"]]
        assert "Hello from Chromium" in bodies and thread.json()["conversation"]["id"] == cid
