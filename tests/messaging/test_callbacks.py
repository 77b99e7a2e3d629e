"""Delivery reports that come back later: Twilio's signed status callbacks."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers import twilio
from omnicx.messaging.providers.base import Channel, SendResult
from omnicx.messaging.providers.fake import FakeProvider
from omnicx.settings import Settings
from tests.messaging.factories import customer, message, setup_brand_and_templates, submit_at

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CALLBACK = "http://omnicx.test/m/twilio/status"
TOKEN = "twilio-auth-token"


async def test_signed_status_callbacks_update_the_message(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(client, write_key, "u-1", phone="+4791234567", consent={"sms": True})
    db.settings = settings.model_copy(
        update={"twilio_auth_token": SecretStr(TOKEN), "twilio_status_callback_url": CALLBACK}
    )
    sms = FakeProvider(Channel.sms, "twilio")
    sms.script.extend([SendResult("SM1"), SendResult("SM2")])
    delivery = Delivery(db, db.settings, app.state.hooks, {"twilio": sms})
    ids = []
    for _ in range(2):
        sent = await submit_at(
            db,
            app.state.hooks,
            db.settings,
            T0,
            available={"twilio": Channel.sms},
            to="user_id:u-1",
            channel="sms",
        )
        ids.append(sent.id)
    await delivery.deliver_due()

    async def callback(form: dict[str, str], signature: str | None = None) -> httpx.Response:
        signed = signature or twilio.signature(TOKEN, CALLBACK, form)
        return await client.post(
            "/m/twilio/status",
            content=urlencode(form),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-twilio-signature": signed,
            },
        )

    delivered = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+4791234567"}
    assert (await callback(delivered, signature="forged")).status_code == 403
    assert (await message(client, admin_headers, ids[0]))["status"] == "sent"
    assert (await callback(delivered)).status_code == 204
    assert (await message(client, admin_headers, ids[0]))["status"] == "delivered"

    dead = {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "30005"}
    assert (await callback(dead)).status_code == 204
    bounced = await message(client, admin_headers, ids[1])
    assert bounced["status"] == "bounced" and "30005" in bounced["reason"]
    again = await submit_at(
        db,
        app.state.hooks,
        db.settings,
        T0,
        available={"twilio": Channel.sms},
        to="user_id:u-1",
        channel="sms",
    )
    assert again.status == "skipped" and "suppressed" in (again.reason or "")
    assert (await callback({"MessageSid": "SM1"})).status_code == 400
