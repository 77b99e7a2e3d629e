"""Consent is checked again as a message leaves, not only when it is accepted."""

from __future__ import annotations

import httpx

from omnicx.messaging.delivery import Delivery
from tests.messaging.factories import customer, message, send, setup_brand_and_templates
from tests.messaging.servers import Mailbox


async def test_an_opt_out_while_queued_stops_the_marketing_message(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    delivery: Delivery,
    mailbox: Mailbox,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(
        client, write_key, "u-2", email="bea@example.com", consent={"email": {"newsletter": True}}
    )
    queued = await send(client, admin_headers, to="user_id:u-2", channel="email")
    assert queued["status"] == "queued", queued
    # She opts out before the worker gets to it (a quiet-hours deferral, a retry backlog…).
    response = await client.put(
        "/api/profiles/user_id:u-2/consent",
        headers=admin_headers,
        json={"consents": [{"channel": "email", "topic": "newsletter", "status": "denied"}]},
    )
    assert response.status_code == 200
    await delivery.deliver_due()
    assert mailbox.messages == []
    record = await message(client, admin_headers, queued["id"])
    assert record["status"] == "skipped"
    assert "denied at send time" in record["reason"]
