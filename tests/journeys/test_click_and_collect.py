"""The shipped click-and-collect journey on real pickups: ready → the pickup code by push;
collected → thanks; not collected within two days → a reminder, then nothing more."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from omnicx.auth.service import Role
from omnicx.db import Database, utcnow
from tests.commerce.factories import move, put_store, send_batch, shopper_journey
from tests.conftest import new_token
from tests.journeys.factories import drain, messages, runs
from tests.journeys.test_abandoned_cart import load_example
from tests.messaging.providers.test_webpush import Browser


async def test_pickup_code_reminder_and_thanks(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h, hooks = admin_headers, app.state.hooks
    await load_example(db, "click-and-collect")
    await put_store(client, h, "oslo-1")
    associate = {"Authorization": f"Bearer {await new_token(db, Role.store_associate, 'oslo-1')}"}
    for n, user in enumerate(("nora", "tor")):
        subscription = {"endpoint": f"https://push.example/{user}", "keys": Browser.new().keys()}
        await send_batch(client, write_key, shopper_journey(f"anon-{n}", user, f"O-{n}", "oslo-1"))
        await send_batch(
            client,
            write_key,
            [{"type": "identify", "userId": user, "context": {"pushSubscription": subscription}}],
        )
        for to in ("picking", "ready_for_pickup"):
            assert (await move(client, associate, f"O-{n}", to)).status_code == 200
    start = utcnow()
    await drain(db, hooks, start)

    ids = {}
    for user in ("nora", "tor"):
        ids[(await client.get(f"/api/profiles/user_id:{user}", headers=h)).json()["id"]] = user
    ready = [m for m in await messages(db) if m.template == "pickup-ready"]
    assert sorted(ids[m.profile_id or ""] for m in ready) == ["nora", "tor"]
    for message in ready:
        order = "O-0" if ids[message.profile_id or ""] == "nora" else "O-1"
        code = (await client.get(f"/api/orders/{order}", headers=h)).json()["pickup"]["code"]
        assert message.channel == "webpush"
        assert message.content["body"] == f"Show code {code} at the counter."
        assert message.content["title"] == "Your order is ready at Oslo Karl Johan"

    code = (await client.get("/api/orders/O-0", headers=h)).json()["pickup"]["code"]
    assert (await move(client, associate, "O-0", "collected", code=code)).status_code == 200
    await drain(db, hooks, start + timedelta(hours=1))
    await drain(db, hooks, start + timedelta(days=2, seconds=1))
    await drain(db, hooks, start + timedelta(days=8, seconds=2))
    sent = sorted((ids[m.profile_id or ""], m.template) for m in await messages(db))
    assert sent == [
        ("nora", "pickup-ready"),
        ("nora", "pickup-thank-you"),
        ("tor", "pickup-ready"),
        ("tor", "pickup-reminder"),
    ]
    [nora] = await runs(client, h, "user_id:nora")
    [tor] = await runs(client, h, "user_id:tor")
    assert [(s["node"], s["outcome"]) for s in nora["steps"]][:2] == [
        ("ready", "queued"),
        ("collected", "event"),
    ]
    assert [(s["node"], s["outcome"]) for s in tor["steps"]] == [
        ("ready", "queued"),
        ("collected", "timeout"),
        ("reminder", "queued"),
        ("collected-after-reminder", "timeout"),
    ]
    assert (nora["status"], tor["status"]) == ("completed", "completed")
