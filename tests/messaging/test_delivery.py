"""The delivery loop: retries with backoff, idempotency, independent lanes, lapsed claims."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.models import Message
from omnicx.messaging.providers.base import Channel, PermanentError, TransientError
from omnicx.messaging.providers.fake import FakeProvider
from omnicx.settings import Settings
from tests.helpers import timeline
from tests.messaging.factories import customer, message, send, setup_brand_and_templates, submit_at

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
AVAILABLE = {"fake-sms": Channel.sms, "fake-push": Channel.push, "inapp": Channel.inapp}


async def sms_customer(client: httpx.AsyncClient, write_key: str, user: str = "u-1") -> None:
    await customer(
        client, write_key, user, phone="+4791234567", consent={"sms": True, "inapp": True}
    )


async def row(db: Database, message_id: int) -> Message:
    async with db.session() as session:
        found = await session.get(Message, message_id)
    assert found is not None
    return found


async def test_transient_errors_retry_with_exponential_backoff_then_fail(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    s = settings.model_copy(update={"messaging_retry_seconds": 10.0, "messaging_max_attempts": 4})
    sms = FakeProvider(Channel.sms, "fake-sms")
    sms.fail_next(
        TransientError("503"), TransientError("429", retry_after=300), TransientError("503")
    )
    clock = [T0]
    delivery = Delivery(db, s, app.state.hooks, {"fake-sms": sms}, clock=lambda: clock[0])
    sent = await submit_at(
        db, app.state.hooks, s, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )

    due_times = []
    for _ in range(3):
        await delivery.deliver_due()
        current = await row(db, sent.id)
        assert current.status == "queued" and current.due_at is not None
        due_times.append(current.due_at - clock[0])
        clock[0] = current.due_at - timedelta(seconds=1)
        assert await delivery.deliver_due() == 0  # not before it is due
        clock[0] = current.due_at
    # 10 s, then Retry-After's 300 s beats 20 s, then 40 s.
    assert due_times == [timedelta(seconds=10), timedelta(seconds=300), timedelta(seconds=40)]
    await delivery.deliver_due()
    done = await row(db, sent.id)
    assert done.status == "sent" and done.attempts == 4 and len(sms.sent) == 1

    # A provider that keeps failing gives up after OMNICX_MESSAGING_MAX_ATTEMPTS.
    sms.fail_next(*[TransientError("down")] * 4)
    doomed = await submit_at(
        db,
        app.state.hooks,
        s,
        clock[0],
        available=AVAILABLE,
        to="user_id:u-1",
        channel="sms",
        idempotency_key="doomed",
    )
    for _ in range(4):
        await delivery.deliver_due()
        clock[0] += timedelta(hours=1)
    final = await row(db, doomed.id)
    assert final.status == "failed" and final.reason == "gave up after 4: down"
    events = [e["event"] for e in await timeline(client, admin_headers, "user_id:u-1")]
    assert events.count("Message Failed") == 1 and events.count("Message Sent") == 1


async def test_permanent_errors_stop_and_dead_addresses_are_suppressed(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    sms = FakeProvider(Channel.sms, "fake-sms")
    sms.fail_next(PermanentError("invalid number"), PermanentError("unreachable", prune=True))
    delivery = Delivery(db, settings, app.state.hooks, {"fake-sms": sms}, clock=lambda: T0)
    hooks = app.state.hooks
    first = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )
    await delivery.deliver_due()
    assert (await row(db, first.id)).status == "failed"
    second = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )
    await delivery.deliver_due()
    assert (await row(db, second.id)).status == "bounced"
    third = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )
    assert third.status == "skipped" and "suppressed (hard_bounce)" in (third.reason or "")
    assert sms.calls == 2


async def test_same_idempotency_key_twice_sends_once(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    first = await client.post(
        "/api/messages",
        json={
            "to": "user_id:u-1",
            "message": "spring-sale",
            "channel": "inapp",
            "data": {"product": "tent"},
            "idempotency_key": "journey-7:step-3",
        },
        headers=admin_headers,
    )
    again = await client.post(
        "/api/messages",
        json={
            "to": "user_id:u-1",
            "message": "spring-sale",
            "channel": "inapp",
            "data": {"product": "tent"},
            "idempotency_key": "journey-7:step-3",
        },
        headers=admin_headers,
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    inapp = FakeProvider(Channel.inapp, "inapp")
    delivery = Delivery(db, settings, app.state.hooks, {"inapp": inapp})
    await delivery.deliver_due()
    await delivery.deliver_due()
    assert len(inapp.sent) == 1
    async with db.session() as session:
        rows = (await session.execute(select(Message.id))).scalars().all()
    assert rows == [first.json()["id"]]


async def test_a_stuck_provider_never_delays_another(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    sms = FakeProvider(Channel.sms, "fake-sms")
    inapp = FakeProvider(Channel.inapp, "inapp")
    sms.gate = asyncio.Event()  # the SMS service hangs until the test lets it answer
    hooks = app.state.hooks
    stuck = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )
    free = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="inapp"
    )
    delivery = Delivery(db, settings, hooks, {"fake-sms": sms, "inapp": inapp})
    sms_lane = asyncio.create_task(delivery.run_pass("fake-sms"))
    await asyncio.wait_for(sms.entered.wait(), 10)  # the SMS send has begun, and hangs
    assert await delivery.run_pass("inapp") == 1  # finishes while the SMS lane hangs
    assert (await row(db, free.id)).status == "sent"
    assert (await row(db, stuck.id)).status == "sending"
    sms.gate.set()
    assert await sms_lane == 1
    assert (await row(db, stuck.id)).status == "sent"


async def test_lapsed_claims_retry_inapp_and_fail_others_at_most_once(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    """A worker that died mid-send left messages ``sending``: once the lease lapses, in-app is
    sent again (idempotent) and SMS is failed, never sent twice."""
    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    hooks = app.state.hooks
    sms_msg = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="sms"
    )
    inapp_msg = await submit_at(
        db, hooks, settings, T0, available=AVAILABLE, to="user_id:u-1", channel="inapp"
    )
    dead = Delivery(db, settings, hooks, {}, clock=lambda: T0)
    assert len(await db.transaction(lambda s: dead._claim(s, "fake-sms", T0))) == 1
    assert len(await db.transaction(lambda s: dead._claim(s, "inapp", T0))) == 1
    # ... and the worker is gone. A new one comes up:
    sms, inapp = FakeProvider(Channel.sms, "fake-sms"), FakeProvider(Channel.inapp, "inapp")
    clock = [T0 + timedelta(seconds=10)]
    worker = Delivery(
        db, settings, hooks, {"fake-sms": sms, "inapp": inapp}, clock=lambda: clock[0]
    )
    await worker.deliver_due()
    assert (sms.calls, inapp.calls) == (0, 0)  # the lease has not lapsed yet
    clock[0] = T0 + timedelta(seconds=settings.messaging_lease_seconds)
    await worker.deliver_due()
    assert sms.calls == 0 and len(inapp.sent) == 1
    failed = await message(client, admin_headers, sms_msg.id)
    assert failed["status"] == "failed" and "interrupted" in failed["reason"]
    assert (await message(client, admin_headers, inapp_msg.id))["status"] == "sent"


async def test_api_bad_input_changes_nothing(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str], db: Database
) -> None:
    from tests.helpers import row_counts

    await setup_brand_and_templates(client, admin_headers)
    await sms_customer(client, write_key)
    before = await row_counts(db)
    cases = [
        ({"to": "user_id:u-1", "message": "spring-sale", "channel": "fax"}, 422),
        ({"to": "user_id:u-1", "message": "spring-sale", "channel": ["sms", "sms"]}, 422),
        ({"to": "user_id:u-1", "message": "spring-sale", "channel": []}, 422),
        ({"to": "user_id:u-1", "message": "Not A Name"}, 422),
        ({"to": "user_id:u-1", "message": "no-such-template"}, 404),
        ({"to": "user_id:nobody", "message": "spring-sale"}, 404),
        ({"to": "user_id:u-1", "message": "spring-sale", "quiet_hours": "maybe"}, 422),
        ({"to": "user_id:u-1", "message": "spring-sale", "surprise": 1}, 422),
        ({"message": "spring-sale"}, 422),
    ]
    for body, status in cases:
        response = await client.post("/api/messages", json=body, headers=admin_headers)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()["error"]) >= {"code", "message"}
    assert await row_counts(db) == before
    assert (await client.get("/api/messages/999999", headers=admin_headers)).status_code == 404
    queued = await send(client, admin_headers, to="user_id:u-1", channel="sms")
    assert queued["status"] == "skipped" and queued["reason"] == "sms: no provider"


async def test_digits_that_are_not_ids_are_refused_not_crashed_on(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """``str.isdigit`` takes "³" and 20-digit numbers, which are no row ids."""
    for ref in ("%C2%B3", "9" * 20):
        found = await client.get(f"/api/templates/{ref}", headers=admin_headers)
        assert found.status_code == 404, found.text
        link = await client.get(f"/m/u/{ref}")
        assert link.status_code < 500, link.text
