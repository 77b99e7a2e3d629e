"""Outgoing webhooks against a real local HTTP server: the signature verifies, retries honour
Retry-After, and private or loopback targets are refused unless allowed (SSRF)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers.base import (
    Address,
    Channel,
    OutboundMessage,
    PermanentError,
    TransientError,
    WebhookContent,
)
from omnicx.messaging.providers.webhook import WebhookProvider
from omnicx.messaging.signing import webhook_key
from omnicx.settings import Settings
from tests.messaging.factories import customer, message, setup_brand_and_templates, submit_at
from tests.messaging.servers import http_receiver

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """What a receiver does with X-OmniCX-Signature (documented in the README)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret, f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def test_signed_webhook_and_retry_after(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(client, write_key, "u-1", consent={"webhook": True})
    with http_receiver() as receiver:
        s = settings.model_copy(update={"webhook_url": receiver.url + "/hooks/omnicx"})
        receiver.statuses.append(429)
        provider = WebhookProvider(key=webhook_key(s), allowed_networks=s.webhook_allowed_networks)
        try:
            clock = [T0]
            delivery = Delivery(
                db, s, app.state.hooks, {"webhook": provider}, clock=lambda: clock[0]
            )
            sent = await submit_at(db, app.state.hooks, s, T0, to="user_id:u-1", channel="webhook")
            await delivery.deliver_due()
            retried = await message(client, admin_headers, sent.id)
            assert retried["status"] == "queued" and "HTTP 429" in retried["reason"]
            clock[0] = T0 + timedelta(seconds=119)
            assert await delivery.deliver_due() == 0  # Retry-After: 120
            clock[0] = T0 + timedelta(seconds=120)
            assert await delivery.deliver_due() == 1
        finally:
            await provider.close()
    first, second = receiver.received
    assert second.path == "/hooks/omnicx"
    assert json.loads(second.body) == {"customer": sent.profile_id, "offer": "Alpine jacket"}
    assert verify(webhook_key(s), second.headers["x-omnicx-signature"], second.body)
    assert not verify(b"another key", second.headers["x-omnicx-signature"], second.body)
    assert second.headers["idempotency-key"] == first.headers["idempotency-key"]
    assert second.headers["x-omnicx-message-id"] == str(sent.id)
    assert (await message(client, admin_headers, sent.id))["status"] == "sent"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
    ],
)
async def test_private_and_loopback_targets_are_refused(url: str) -> None:
    message = OutboundMessage(
        id=1,
        idempotency_key="k-1",
        channel=Channel.webhook,
        profile_id="p",
        to=Address("url", url),
        content=WebhookContent(payload={"a": 1}),
    )
    provider = WebhookProvider(key=b"k")
    with pytest.raises(PermanentError):
        await provider.send(message)
    assert provider.pool._idle == {}  # refused before any connection was opened


async def test_allowed_networks_open_a_private_range() -> None:
    with http_receiver() as receiver:
        message = OutboundMessage(
            id=2,
            idempotency_key="k-2",
            channel=Channel.webhook,
            profile_id="p",
            to=Address("url", receiver.url + "/in?x=1"),
            content=WebhookContent(payload={"ok": True}),
        )
        with pytest.raises(PermanentError, match="private or loopback"):
            await WebhookProvider(key=b"k").send(message)
        assert receiver.received == []
        allowed = WebhookProvider(key=b"k", allowed_networks=["127.0.0.0/8"])
        try:
            result = await allowed.send(message)
            receiver.statuses.append(503)
            with pytest.raises(TransientError, match="HTTP 503"):
                await allowed.send(message)
        finally:
            await allowed.close()
    assert result.status == "sent"
    assert [r.path for r in receiver.received] == ["/in?x=1", "/in?x=1"]
    assert json.loads(receiver.received[0].body) == {"ok": True}
