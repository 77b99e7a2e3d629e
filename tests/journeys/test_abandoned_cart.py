"""The shipped abandoned-cart journey end to end, on a controllable clock.

Two shoppers abandon their carts. An hour after the abandonment Ana's phone gets the web push
with the 10% code, through the messaging delivery loop and the web-push provider, at a local
push service that verifies the VAPID signature and whose payload the "browser" decrypts. Bo
orders 30 minutes after abandoning: the goal takes him out at once and he receives nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from omnicx.db import Database, utcnow
from omnicx.journeys import catalog, loader
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers.webpush import VapidConfig, WebPushProvider
from omnicx.settings import Settings
from tests.journeys.factories import drain, identify, messages, runs, stats, track
from tests.messaging.providers.servers import Recorder, serve
from tests.messaging.providers.test_webpush import Browser, verify_vapid


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def push_service() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder(lambda seen: Response(status_code=201, headers={"Location": "/m/1"}))
    async with serve(recorder) as base_url:
        yield recorder, base_url


async def load_example(db: Database, name: str) -> None:
    [doc] = [d for d in loader.shipped() if d.journey.id == name]

    async def work(session: AsyncSession) -> None:
        await loader.load(session, [doc], publish=True, by="test", now=utcnow())

    await db.transaction(work)
    catalog.changed()


async def test_abandoned_cart_push_after_an_hour_and_the_goal_takes_a_buyer_out(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    settings: Settings,
    write_key: str,
    admin_headers: dict[str, str],
    push_service: tuple[Recorder, str],
) -> None:
    recorder, base_url = push_service
    hooks = app.state.hooks
    await load_example(db, "abandoned-cart")
    start = utcnow().replace(microsecond=0)
    clock = Clock(start)
    browsers = {}
    for user in ("ana", "bo"):
        browsers[user] = browser = Browser.new()
        subscription = {"endpoint": f"{base_url}/push/{user}", "keys": browser.keys()}
        context = {"pushSubscription": subscription, "consent": {"webpush": True}}
        await identify(client, write_key, user, start, first_name=user.title(), context=context)
        await track(
            client,
            write_key,
            user,
            "Product Added",
            start,
            cart_id=f"cart-{user}",
            product_id="ALP-JKT",
            name="Alpine jacket",
            price=199,
        )

    # The cart is abandoned after an hour idle (commerce), which enters the journey.
    abandoned = start + timedelta(hours=1)
    await drain(db, hooks, abandoned)
    for user in ("ana", "bo"):
        [run] = await runs(client, admin_headers, f"user_id:{user}")
        assert (run["status"], run["node"]) == ("waiting", "wait-an-hour")
        assert run["wait_until"].startswith((abandoned + timedelta(hours=1)).isoformat()[:19])

    # Bo orders half an hour later: converted, his wait cancelled.
    ordered = abandoned + timedelta(minutes=30)
    await track(client, write_key, "bo", "Order Completed", ordered, order_id="O-1", total=199)
    await drain(db, hooks, ordered)
    [bo] = await runs(client, admin_headers, "user_id:bo")
    assert bo["status"] == "converted"
    assert bo["steps"][-1]["node"] == "$goal"

    # An hour after abandonment: Ana's push is queued and delivered; Bo gets nothing.
    clock.now = due = abandoned + timedelta(hours=1)
    await drain(db, hooks, due)
    async with httpx.AsyncClient() as http:
        vapid = VapidConfig(
            private_key=settings.vapid_private_key,
            subject=settings.vapid_subject,
            allow_http=True,
        )
        delivery = Delivery(
            db, settings, hooks, {"webpush": WebPushProvider(vapid, http)}, clock=clock
        )
        assert await delivery.run_pass("webpush") == 1

    [seen] = recorder.seen
    assert seen.path == "/push/ana"
    verify_vapid(seen, origin=base_url)
    payload = json.loads(browsers["ana"].decrypt(seen.body))
    assert payload["title"] == "Still thinking about the Alpine jacket?"
    assert payload["body"] == "10% off today with code COMEBACK10."
    assert payload["url"] == "https://shop.example/cart/cart-ana"

    [message] = await messages(db)
    ana = (await client.get("/api/profiles/user_id:ana", headers=admin_headers)).json()
    assert (message.profile_id, message.channel, message.status) == (ana["id"], "webpush", "sent")
    assert message.idempotency_key.startswith("journey:")
    [run] = await runs(client, admin_headers, "user_id:ana")
    assert run["status"] == "completed"
    assert [(s["node"], s["outcome"]) for s in run["steps"]] == [
        ("wait-an-hour", "elapsed"),
        ("offer", "queued"),
    ]
    events = (await client.get("/api/profiles/user_id:ana/events", headers=admin_headers)).json()[
        "items"
    ]
    names = [e["event"] for e in events]
    assert {"Journey Entered", "Journey Step", "Journey Exited"} <= set(names)

    report = await stats(client, admin_headers, "abandoned-cart")
    assert report["totals"] == {
        "entered": 2,
        "active": 0,
        "completed": 1,
        "exited": 0,
        "converted": 1,
    }
    assert report["nodes"]["wait-an-hour"]["converted"] == 1
    assert report["nodes"]["offer"]["outcomes"] == {"queued": 1}

    # The analysts' funnel reads the same steps from the timeline.
    window = {
        "start": (start - timedelta(days=1)).isoformat(),
        "end": (clock.now + timedelta(minutes=1)).isoformat(),
    }
    funnel = await client.get(
        "/api/analytics/journeys/abandoned-cart/funnel", params=window, headers=admin_headers
    )
    assert funnel.status_code == 200, funnel.text
    assert [(r["node_id"], r["customers"]) for r in funnel.json()["rows"]] == [
        ("wait-an-hour", 2),
        ("offer", 1),
    ]
