"""The bot: FAQ answers (fuzzy, from the API and from a file), order and pickup status for the
identified customer only, and its handoff triggers (asked, unsure, a rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from omnicx.app import create_app
from omnicx.conversations import bot
from omnicx.db import Database
from omnicx.messaging.signing import inapp_key, user_hash
from omnicx.settings import Settings
from tests.conversations.conftest import widget
from tests.helpers import send_ok

HOURS: dict[str, Any] = {
    "questions": ["What are your opening hours?", "When is the store open?"],
    "answer": "We are open 9 to 18 on weekdays and 10 to 16 on Saturdays.",
    "topic": "opening hours",
}


def signed_in(db: Database, key: str, user_id: str) -> dict[str, str]:
    return widget(key, user_id=user_id, user_hash=user_hash(inapp_key(db.settings), user_id))


async def say(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> list[Any]:
    response = await client.post("/c/messages", json={"body": text}, headers=headers)
    assert response.status_code == 201, response.text
    items: list[Any] = response.json()["items"]
    return items


def test_fuzzy_matching_scores() -> None:
    entries = [bot.Faq("hours", HOURS["questions"], HOURS["answer"], "opening hours")]
    assert bot.best_faq("when's the store open today?", entries, 0.72) is not None
    assert bot.best_faq("wat are yur openng hours", entries, 0.72) is not None  # typos
    assert bot.best_faq("do you sell skis", entries, 0.72) is None


async def test_faq_answers_and_the_file_too(
    client: httpx.AsyncClient, db: Database, admin: dict[str, str], web_key: str, tmp_path: Path
) -> None:
    assert (await client.put("/api/faq/hours", json=HOURS, headers=admin)).status_code == 200
    visitor = widget(web_key, anonymous_id="anon-faq")
    _, answer = await say(client, visitor, "hi! when is the store open on saturday?")
    assert answer["author"] == "bot" and "Saturdays" in answer["body"]

    faq_file = tmp_path / "faq.yaml"
    faq_file.write_text(
        "- id: returns\n  questions: ['How do I return an item?']\n"
        "  answer: Return it in any store within 30 days.\n  topic: returns\n"
    )
    settings = db.settings.model_copy(update={"conversations_faq_file": str(faq_file)})
    other = Database(settings)
    try:
        app: FastAPI = create_app(database=other)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://omnicx.test") as c:
            _, answer = await say(c, visitor, "how can i return an item")
            assert answer["body"] == "Return it in any store within 30 days."
            conversation = (await c.get("/c/conversation", headers=visitor)).json()
            assert conversation["conversation"]["status"] == "bot"
    finally:
        await other.dispose()


async def test_order_status_only_for_the_identified_customer(
    client: httpx.AsyncClient, db: Database, web_key: str
) -> None:
    await send_ok(
        client,
        web_key,
        "track",
        userId="u-1",
        event="Order Completed",
        properties={
            "order_id": "O-1001",
            "total": 120,
            "currency": "EUR",
            "fulfillment": "pickup",
            "store_id": "oslo-1",
            "products": [{"product_id": "alp-jkt", "name": "Alpine Jacket", "price": 120}],
        },
    )
    owner = signed_in(db, web_key, "u-1")
    _, answer = await say(client, owner, "Where is my order O-1001?")
    assert answer["body"].startswith("Order O-1001 is")
    assert "pickup at store oslo-1" in answer["body"]

    stranger = signed_in(db, web_key, "u-2")
    _, answer = await say(client, stranger, "Where is my order O-1001?")
    assert "can't find an order O-1001" in answer["body"]

    anonymous = widget(web_key, anonymous_id="anon-curious")
    _, answer = await say(client, anonymous, "what's the status of order O-1001")
    assert answer["body"].startswith("Please sign in")
    assert "O-1001" not in answer["body"]


async def test_handoff_when_asked_when_unsure_and_on_a_rule(
    client: httpx.AsyncClient,
    db: Database,
    agent: dict[str, str],
    admin: dict[str, str],
    web_key: str,
) -> None:
    asked = widget(web_key, anonymous_id="anon-asks")
    [message] = await say(client, asked, "Can I speak to a human?")
    conversation = (
        await client.get(f"/api/conversations/{message['conversation_id']}", headers=agent)
    ).json()
    assert conversation["status"] == "queued"
    assert conversation["handoff"]["reason"] == "asked for an agent"
    # After the handoff the bot is silent.
    assert len(await say(client, asked, "hello?")) == 1

    unsure = widget(web_key, anonymous_id="anon-unsure")
    first = await say(client, unsure, "blorp zzyx")
    assert [m["author"] for m in first] == ["customer", "bot"]
    await say(client, unsure, "qwfp arst")  # the second miss in a row: handed off
    conversation = (
        await client.get(f"/api/conversations/{first[0]['conversation_id']}", headers=agent)
    ).json()
    assert conversation["handoff"]["reason"] == "the bot could not answer"
    assert len(conversation["handoff"]["transcript"]) == 3

    rule: Settings = db.settings.model_copy(
        update={"conversations_handoff_topics": ["refunds"], "conversations_bot_misses": 5}
    )
    other = Database(rule)
    try:
        transport = httpx.ASGITransport(app=create_app(database=other))
        async with httpx.AsyncClient(transport=transport, base_url="http://omnicx.test") as c:
            refund = {"questions": ["I want a refund"], "answer": "Sorry to hear that!"}
            put = await c.put("/api/faq/refund", json={**refund, "topic": "refunds"}, headers=admin)
            assert put.status_code == 200
            ruled = widget(web_key, anonymous_id="anon-refund")
            _, answer = await say(c, ruled, "i want a refund for my boots")
            assert answer["body"] == "Sorry to hear that!"
            view = await c.get(f"/api/conversations/{answer['conversation_id']}", headers=agent)
            assert view.json()["handoff"]["reason"] == "topic refunds"
            assert view.json()["handoff"]["collected"]["topic"] == "refunds"
    finally:
        await other.dispose()
