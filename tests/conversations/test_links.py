"""Signed links (back into a thread, the CSAT page), a staff reply reopening a resolved thread,
and the brief context journeys, templates and the store view read."""

from __future__ import annotations

from datetime import timedelta

import httpx

from omnicx.conversations import outbound, service
from omnicx.db import Database, utcnow
from tests.conversations.conftest import widget
from tests.helpers import timeline


async def test_links_csat_page_reopen_by_staff_and_context(
    client: httpx.AsyncClient,
    db: Database,
    web_key: str,
    agent: dict[str, str],
    admin: dict[str, str],
) -> None:
    visitor = widget(web_key, anonymous_id="anon-link")
    items = (
        await client.post(
            "/c/messages", json={"body": "is my order ready for pickup?"}, headers=visitor
        )
    ).json()["items"]
    cid = items[0]["conversation_id"]
    async with db.session() as session:
        c = await service.get(session, conversation_id=cid)
        assert c is not None
        context = await service.context_of(session, profile_id=c.profile_id)
        assert (context.conversation_id, context.status, context.topic) == (
            cid,
            "bot",
            "order status",
        )
        now = utcnow()
        fresh = outbound.make_token(db.settings, "s", c, now)
        old = outbound.make_token(db.settings, "t", c, now - timedelta(days=30))
        thread = outbound.make_token(db.settings, "t", c, now)
    assert (await client.get(f"/c/t/{old}")).status_code == 404  # expired
    assert (await client.get(f"/c/t/{thread}x")).status_code == 404  # forged
    assert (await client.get(f"/c/csat/{thread}")).status_code == 404  # another purpose

    page = await client.get(f"/c/csat/{fresh}?score=4")
    assert page.status_code == 200 and "<button name='score' value='4' autofocus>" in page.text
    events = await timeline(client, admin, c.profile_id, limit=50)
    assert "Survey Answered" not in [e["event"] for e in events]  # a GET records nothing
    for score in ("4", "2"):  # the second answer is ignored: one per conversation
        answered = await client.post(
            f"/c/csat/{fresh}",
            content=f"score={score}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answered.status_code == 200
    bad = await client.post(
        f"/c/csat/{fresh}",
        content="score=9",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad.status_code == 422
    events = await timeline(client, admin, c.profile_id, limit=50)
    surveys = [e for e in events if e["event"] == "Survey Answered"]
    assert [s["properties"]["score"] for s in surveys] == [4]

    await client.post(f"/api/conversations/{cid}/resolve", json={"csat": False}, headers=agent)
    reopened = await client.post(
        f"/api/conversations/{cid}/messages", json={"body": "One more thing!"}, headers=agent
    )
    assert reopened.status_code == 201
    view = (await client.get(f"/api/conversations/{cid}", headers=agent)).json()
    assert (view["status"], view["assignee"]) == ("assigned", "agent-test")
