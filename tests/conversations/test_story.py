"""The seed's story: a visitor chats with the bot, signs in (her thread follows the merge), asks
for a person (handoff with transcript and what the bot collected), the agent answers while she
is away (a push with a link back), she answers by SMS (same thread), the agent resolves, and a
CSAT request goes out by SMS. Nobody asks her to repeat anything."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode

import httpx

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers import twilio
from omnicx.messaging.signing import inapp_key, user_hash
from tests.conversations.conftest import PUBLIC_URL, TWILIO_TOKEN, Outside, widget
from tests.helpers import send_ok, timeline

PHONE = "+4741234567"


async def sms(client: httpx.AsyncClient, sender: str, body: str, sid: str) -> httpx.Response:
    form = {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": sid}
    url = f"{PUBLIC_URL}/c/twilio/sms"
    signature = twilio.signature(TWILIO_TOKEN, url, form)
    return await client.post(
        url,
        content=urlencode(form),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )


async def test_one_thread_from_web_chat_to_sms_and_csat(
    client: httpx.AsyncClient,
    db: Database,
    delivery: Delivery,
    services: Outside,
    agent: dict[str, str],
    admin: dict[str, str],
    web_key: str,
) -> None:
    assert (
        await client.put(
            "/api/conversation-agents/agent-test", json={"queues": ["support"]}, headers=admin
        )
    ).status_code == 200
    faq = {
        "questions": ["Can I reserve a jacket for pickup in store?"],
        "answer": "Yes: choose click-and-collect at checkout and we hold it for 3 days.",
        "topic": "click-and-collect",
    }
    assert (await client.put("/api/faq/reserve", json=faq, headers=admin)).status_code == 200

    # 1. An anonymous visitor asks the bot.
    anonymous = widget(web_key, anonymous_id="anon-42")
    asked = await client.post(
        "/c/messages",
        json={"body": "can i reserve the Alpine jacket for pickup in the store?"},
        headers=anonymous,
    )
    assert asked.status_code == 201, asked.text
    question, answer = asked.json()["items"]
    assert answer["author"] == "bot" and "click-and-collect" in answer["body"]
    first_id = question["conversation_id"]

    # 2. She signs in on the site: the anonymous profile merges into hers, the thread follows.
    await send_ok(
        client,
        web_key,
        "identify",
        userId="u-42",
        anonymousId="anon-42",
        traits={"email": "ana@example.com", "phone": PHONE, "first_name": "Ana"},
        context={"device": {"token": "fcm-token-ana", "type": "android"}},
    )
    signed_in = widget(web_key, user_id="u-42", user_hash=user_hash(inapp_key(db.settings), "u-42"))
    seen = await client.get("/c/conversation", headers=signed_in)
    assert seen.json()["conversation"]["id"] == first_id
    assert [m["body"] for m in seen.json()["messages"]][-1] == answer["body"]

    # 3. She asks for a person: handoff to the queue, round robin gives it to the agent.
    handed = await client.post(
        "/c/messages", json={"body": "I'd like to talk to a human please"}, headers=signed_in
    )
    assert handed.status_code == 201
    assert len(handed.json()["items"]) == 1  # the bot is silent from now on
    conversation = (await client.get(f"/api/conversations/{first_id}", headers=agent)).json()
    assert conversation["status"] == "assigned" and conversation["assignee"] == "agent-test"
    handoff = conversation["handoff"]
    assert handoff["reason"] == "asked for an agent"
    assert handoff["collected"]["topic"] == "click-and-collect"
    assert [m["author"] for m in handoff["transcript"]] == ["customer", "bot", "customer"]
    assert handoff["transcript"][0]["body"].startswith("can i reserve the Alpine jacket")

    # 4. The agent answers while she is away: it goes out as a push with a link back.
    reply = await client.post(
        f"/api/conversations/{first_id}/messages",
        json={"body": "Hi Ana, the Alpine jacket in M is in stock in Oslo. Shall I hold it?"},
        headers=agent,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["delivery"] == "queued"
    assert await delivery.run_pass("fcm") == 1
    [push] = services.pushes()
    payload = json.loads(push.body)["message"]
    assert payload["token"] == "fcm-token-ana"
    link = payload["data"]["deep_link"]
    assert link.startswith(f"{PUBLIC_URL}/c/t/")
    assert payload["notification"]["title"] == "agent-test replied"
    token = link.rsplit("/", 1)[1]
    page = await client.get(f"/c/t/{token}")
    assert page.status_code == 200 and token in page.text
    via_link = await client.get("/c/conversation", headers=widget(web_key, thread=token))
    assert via_link.json()["conversation"]["id"] == first_id

    # 5. She answers by SMS: the same thread.
    answered = await sms(client, PHONE, "Yes please, I'll pick it up tomorrow", "SM-in-1")
    assert answered.status_code == 200 and "<Response>" in answered.text
    again = await sms(client, PHONE, "Yes please, I'll pick it up tomorrow", "SM-in-1")
    assert again.status_code == 200  # Twilio retried: stored once
    thread = (await client.get(f"/api/conversations/{first_id}/messages", headers=agent)).json()
    last = thread["items"][-1]
    assert (last["author"], last["channel"]) == ("customer", "sms")
    assert sum(m["body"].startswith("Yes please") for m in thread["items"]) == 1

    # 6. Resolved: the CSAT request goes out on her channel now, SMS.
    resolved = await client.post(f"/api/conversations/{first_id}/resolve", json={}, headers=agent)
    assert resolved.json()["status"] == "resolved"
    assert await delivery.run_pass("twilio") == 1
    [text] = services.texts()
    form = parse_qs(text.body.decode())
    assert form["To"] == [PHONE]
    assert form["Body"][0].startswith("How did we do?")
    assert f"{PUBLIC_URL}/c/csat/" in form["Body"][0]

    # Her score by SMS reply is the Survey Answered event analytics counts.
    assert (await sms(client, PHONE, "5", "SM-in-2")).status_code == 200
    events = await timeline(client, admin, "user_id:u-42", limit=100)
    names = [e["event"] for e in events]
    for expected in (
        "Conversation Started",
        "Conversation Handed Off",
        "Conversation Resolved",
        "Survey Answered",
    ):
        assert expected in names
    survey = next(e for e in events if e["event"] == "Survey Answered")
    assert survey["properties"]["score"] == 5 and survey["properties"]["agent"] == "agent-test"
    history = (await client.get("/api/profiles/user_id:u-42/conversations", headers=agent)).json()
    assert [c["id"] for c in history["items"]] == [first_id]
