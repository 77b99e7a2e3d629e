"""Thread rules: email threading, reopening within the window or starting a linked one, two
open threads folding into one on a merge, erasure, round robin with capacity, business hours,
canned responses and notes, and the store associate's scope."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from omnicx.app import create_app
from omnicx.auth.service import Role
from omnicx.conversations.models import Conversation
from omnicx.db import Database, utcnow
from omnicx.messaging.delivery import Delivery
from tests.conftest import new_token
from tests.conversations.conftest import Outside, widget
from tests.helpers import send_ok

EMAIL = (
    "From: Ana <ana@example.com>\r\nTo: help@alpine.example\r\nSubject: {subject}\r\n"
    "Message-ID: <{mid}@mail.example.com>\r\n{extra}Content-Type: text/plain\r\n\r\n{body}"
)


def email(mid: str, body: str, subject: str = "Jacket", extra: str = "") -> bytes:
    return EMAIL.format(mid=mid, body=body, subject=subject, extra=extra).encode()


async def test_email_threads_by_sender_and_in_reply_to(
    client: httpx.AsyncClient,
    db: Database,
    web_key: str,
    agent: dict[str, str],
    delivery: Delivery,
    services: Outside,
) -> None:
    first = await client.post(
        "/c/email", content=email("m1", "Do you have the Alpine jacket in M?"), auth=(web_key, "")
    )
    assert first.status_code == 202, first.text
    cid = first.json()["conversation_id"]
    again = await client.post("/c/email", content=email("m1", "dup"), auth=(web_key, ""))
    assert again.json() == {**first.json(), "duplicate": True}

    view = (await client.get(f"/api/conversations/{cid}", headers=agent)).json()
    assert (view["status"], view["handoff"]["reason"]) == ("queued", "email")
    reply = await client.post(
        f"/api/conversations/{cid}/messages", json={"body": "Yes, in Oslo."}, headers=agent
    )
    assert reply.json()["delivery"] == "queued"
    assert await delivery.run_pass("smtp") == 1
    [sent] = services.mailbox.messages
    assert sent["To"] == "ana@example.com"
    resolved = await client.post(
        f"/api/conversations/{cid}/resolve", json={"csat": False}, headers=agent
    )
    assert resolved.json()["status"] == "resolved"
    async with db.session() as session:  # long ago: outside the reopen window
        await session.execute(
            update(Conversation).values(resolved_at=utcnow() - timedelta(days=30))
        )
        await session.commit()

    answer = email(
        "m2",
        "Great, please hold it.\r\n\r\nOn Monday Alpine wrote:\r\n> Yes, in Oslo.",
        subject="Re: Jacket",
        extra=f"In-Reply-To: {sent['Message-ID']}\r\n",
    )
    threaded = await client.post("/c/email", content=answer, auth=(web_key, ""))
    assert threaded.json()["conversation_id"] == cid  # her reply reopens that thread
    thread = (await client.get(f"/api/conversations/{cid}/messages", headers=agent)).json()
    assert thread["items"][-1]["body"] == "Great, please hold it."
    assert (await client.get(f"/api/conversations/{cid}", headers=agent)).json()[
        "status"
    ] == "assigned"


async def test_reopen_within_the_window_else_a_new_linked_thread(
    client: httpx.AsyncClient, db: Database, web_key: str, agent: dict[str, str]
) -> None:
    visitor = widget(web_key, anonymous_id="anon-re")
    asked = await client.post("/c/messages", json={"body": "hello there"}, headers=visitor)
    cid = asked.json()["items"][0]["conversation_id"]
    await client.post(f"/api/conversations/{cid}/resolve", json={"csat": False}, headers=agent)
    again = await client.post("/c/messages", json={"body": "one more thing"}, headers=visitor)
    assert again.json()["items"][0]["conversation_id"] == cid

    await client.post(f"/api/conversations/{cid}/resolve", json={"csat": False}, headers=agent)
    async with db.session() as session:
        await session.execute(
            update(Conversation).values(resolved_at=utcnow() - timedelta(hours=25))
        )
        await session.commit()
    later = await client.post("/c/messages", json={"body": "hi again"}, headers=visitor)
    new_id = later.json()["items"][0]["conversation_id"]
    assert new_id != cid
    view = (await client.get(f"/api/conversations/{new_id}", headers=agent)).json()
    assert view["previous_id"] == cid and view["status"] == "bot"


async def test_two_open_threads_fold_into_one_on_merge_and_erasure_removes_them(
    client: httpx.AsyncClient,
    db: Database,
    web_key: str,
    agent: dict[str, str],
    admin: dict[str, str],
) -> None:
    await send_ok(client, web_key, "identify", userId="u-8", traits={"phone": "+4790000008"})
    app_thread = await client.post(
        "/api/conversations",
        json={"to": "user_id:u-8", "body": "Called about boots", "channel": "phone"},
        headers=agent,
    )
    assert app_thread.status_code == 201
    kept = app_thread.json()["id"]
    web = widget(web_key, anonymous_id="anon-8")
    folded = (await client.post("/c/messages", json={"body": "hello"}, headers=web)).json()
    folded_id = folded["items"][0]["conversation_id"]
    await send_ok(client, web_key, "identify", userId="u-8", anonymousId="anon-8")

    mine = (await client.get("/api/profiles/user_id:u-8/conversations", headers=agent)).json()
    assert [c["id"] for c in mine["items"]] == [kept]
    merged = (await client.get(f"/api/conversations/{folded_id}", headers=agent)).json()
    assert (merged["status"], merged["merged_into"]) == ("merged", kept)
    thread = (await client.get(f"/api/conversations/{kept}/messages", headers=agent)).json()
    assert {m["body"] for m in thread["items"]} >= {"Called about boots", "hello"}

    erased = await client.delete("/api/profiles/user_id:u-8", headers=admin)
    assert erased.status_code == 200
    assert (await client.get(f"/api/conversations/{kept}", headers=agent)).status_code == 404
    assert (await client.get(f"/api/conversations/{folded_id}", headers=agent)).status_code == 404


async def test_round_robin_with_capacity_and_the_away_message(
    client: httpx.AsyncClient, db: Database, web_key: str, admin: dict[str, str]
) -> None:
    for name in ("ana", "bo"):
        await client.put(
            f"/api/conversation-agents/{name}",
            json={"queues": ["support"], "capacity": 1},
            headers=admin,
        )
    assignees = []
    for i in range(3):
        items = (
            await client.post(
                "/c/messages",
                json={"body": "agent please"},
                headers=widget(web_key, anonymous_id=f"rr-{i}"),
            )
        ).json()["items"]
        view = await client.get(f"/api/conversations/{items[0]['conversation_id']}", headers=admin)
        assignees.append((view.json()["status"], view.json()["assignee"]))
    assert sorted(assignees[:2]) == [("assigned", "ana"), ("assigned", "bo")]
    assert assignees[2] == ("queued", None)  # both full
    agents = (await client.get("/api/conversation-agents", headers=admin)).json()
    assert [a["open_conversations"] for a in agents] == [1, 1]

    # Ana resolves hers: the waiting conversation goes to her.
    page = await client.get("/api/conversations?assignee=ana", headers=admin)
    await client.post(
        f"/api/conversations/{page.json()['items'][0]['id']}/resolve",
        json={"csat": False},
        headers=admin,
    )
    waiting = await client.get("/api/conversations?status=assigned&assignee=ana", headers=admin)
    assert len(waiting.json()["items"]) == 1

    closed = db.settings.model_copy(update={"conversations_business_hours": {"sun": "00:00-00:01"}})
    other = Database(closed)
    try:
        transport = httpx.ASGITransport(app=create_app(database=other))
        async with httpx.AsyncClient(transport=transport, base_url="http://omnicx.test") as c:
            items = (
                await c.post(
                    "/c/messages",
                    json={"body": "I need a human"},
                    headers=widget(web_key, anonymous_id="night-owl"),
                )
            ).json()["items"]
    finally:
        await other.dispose()
    assert items[-1]["author"] == "system" and "away" in items[-1]["body"]


async def test_canned_notes_and_the_store_associates_scope(
    client: httpx.AsyncClient, db: Database, web_key: str, agent: dict[str, str]
) -> None:
    oslo = {"Authorization": f"Bearer {await new_token(db, Role.store_associate, 'oslo-1')}"}
    bergen = {"Authorization": f"Bearer {await new_token(db, Role.store_associate, 'bergen')}"}
    await send_ok(
        client,
        web_key,
        "track",
        userId="u-3",
        event="Order Completed",
        properties={"order_id": "O-3", "total": 10, "fulfillment": "pickup", "store_id": "oslo-1"},
    )
    items = (
        await client.post(
            "/c/messages",
            json={"body": "agent please"},
            headers=widget(web_key, anonymous_id="x", user_id="u-3", user_hash="bad"),
        )
    ).json()
    assert items["error"]["code"] == "unauthenticated"
    opened = await client.post(
        "/api/conversations", json={"to": "user_id:u-3", "body": "Picked up early?"}, headers=agent
    )
    cid = opened.json()["id"]
    assert (await client.get(f"/api/conversations/{cid}", headers=oslo)).status_code == 200
    assert (await client.get(f"/api/conversations/{cid}", headers=bergen)).status_code == 404
    assert [
        c["id"] for c in (await client.get("/api/conversations", headers=oslo)).json()["items"]
    ] == [cid]
    assert (await client.get("/api/conversations", headers=bergen)).json()["items"] == []

    put = await client.put(
        "/api/canned-responses/ready", json={"body": "Your order is ready!"}, headers=agent
    )
    assert put.status_code == 200
    note = await client.post(
        f"/api/conversations/{cid}/messages",
        json={"body": "Customer came by, will return", "internal": True},
        headers=oslo,
    )
    assert note.json()["author"] == "associate" and note.json()["channel"] == "store"
    canned = await client.post(
        f"/api/conversations/{cid}/messages", json={"canned": "ready"}, headers=agent
    )
    assert canned.json()["body"] == "Your order is ready!"
    customer_view = await client.get(
        "/c/conversation", headers=widget(web_key, anonymous_id="never-seen")
    )
    assert customer_view.json() == {"conversation": None, "messages": []}
