"""Refused, and nothing changes: a forged widget identity, an anonymous id that belongs to a
signed-in customer, a bad Twilio signature, an oversize message, a flood, a bad email."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from omnicx.db import Database
from omnicx.messaging.providers import twilio
from tests.conversations.conftest import PUBLIC_URL, TWILIO_TOKEN, widget
from tests.helpers import row_counts, send_ok


async def test_forged_or_missing_identity_is_refused(
    client: httpx.AsyncClient, db: Database, web_key: str
) -> None:
    before = await row_counts(db)
    cases = [
        widget(web_key, user_id="u-1", user_hash="0" * 64),
        widget(web_key, user_id="u-1"),
        widget("wk_not_a_key", anonymous_id="anon-1"),
        widget(web_key),
        widget(web_key, thread="1.p.99999999999.forged"),
    ]
    for headers in cases:
        response = await client.post("/c/messages", json={"body": "hi"}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] in ("unauthenticated", "verification_required")
    assert await row_counts(db) == before


async def test_an_anonymous_id_of_a_signed_in_customer_needs_her_hash(
    client: httpx.AsyncClient, db: Database, web_key: str
) -> None:
    await send_ok(client, web_key, "identify", userId="u-5", anonymousId="anon-5")
    before = await row_counts(db)
    response = await client.post(
        "/c/messages", json={"body": "hi"}, headers=widget(web_key, anonymous_id="anon-5")
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "verification_required"
    peek = await client.get("/c/conversation", headers=widget(web_key, anonymous_id="anon-5"))
    assert peek.status_code == 401
    assert await row_counts(db) == before


async def test_bad_twilio_signature_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    form = {"From": "+4741234567", "Body": "hi", "MessageSid": "SM-forged"}
    url = f"{PUBLIC_URL}/c/twilio/sms"
    before = await row_counts(db)
    for signature in ("", "bm90IGEgc2lnbmF0dXJl", twilio.signature("other-token", url, form)):
        response = await client.post(
            url,
            content=urlencode(form),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-twilio-signature": signature,
            },
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "bad_signature"
    # The right signature over different parameters is a forgery too.
    signed = twilio.signature(TWILIO_TOKEN, url, {**form, "Body": "something else"})
    response = await client.post(
        url,
        content=urlencode(form),
        headers={"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signed},
    )
    assert response.status_code == 403
    assert await row_counts(db) == before


async def test_oversize_and_flood_are_refused(
    client: httpx.AsyncClient, db: Database, web_key: str, agent: dict[str, str]
) -> None:
    visitor = widget(web_key, anonymous_id="anon-big")
    before = await row_counts(db)
    huge = await client.post("/c/messages", json={"body": "x" * 4001}, headers=visitor)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "message_too_large"
    empty = await client.post("/c/messages", json={"body": "   "}, headers=visitor)
    assert empty.status_code == 422
    assert await row_counts(db) == before

    statuses = []
    for i in range(22):
        response = await client.post(
            "/c/messages", json={"body": f"spam {i}"}, headers=widget(web_key, anonymous_id="f")
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [201] * 20
    assert statuses[20:] == [429, 429]
    page = (await client.get("/c/conversation", headers=widget(web_key, anonymous_id="f"))).json()
    assert sum(m["author"] == "customer" for m in page["messages"]) == 20

    staff_huge = await client.post(
        f"/api/conversations/{page['conversation']['id']}/messages",
        json={"body": "y" * 4001},
        headers=agent,
    )
    assert staff_huge.status_code == 413


async def test_bad_inbound_email_is_refused(
    client: httpx.AsyncClient, db: Database, web_key: str
) -> None:
    before = await row_counts(db)
    no_key = await client.post("/c/email", content=b"From: a@b.c\r\n\r\nhi")
    assert no_key.status_code == 401
    bad = await client.post("/c/email", content=b"Subject: no sender\r\n\r\nhi", auth=(web_key, ""))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_email"
    assert await row_counts(db) == before


async def test_paging_cursors_out_of_range_are_refused(
    client: httpx.AsyncClient, agent: dict[str, str]
) -> None:
    huge = 2**70
    listing = await client.get(f"/api/conversations?before={huge}&queue=support", headers=agent)
    assert listing.status_code == 422, listing.text
    messages = await client.get(f"/api/conversations/1/messages?after={huge}", headers=agent)
    assert messages.status_code == 422, messages.text
