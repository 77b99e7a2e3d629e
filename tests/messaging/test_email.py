"""Email end to end against a real SMTP server: brand kit, headers, one-click unsubscribe,
opens and clicks."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from omnicx.messaging.delivery import Delivery
from tests.helpers import timeline
from tests.messaging.factories import customer, message, send, setup_brand_and_templates
from tests.messaging.servers import Mailbox


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_marketing_email_then_one_click_unsubscribe(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    delivery: Delivery,
    mailbox: Mailbox,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(
        client, write_key, "u-1", email="ana@example.com", consent={"email": {"newsletter": True}}
    )

    sent = await send(client, admin_headers, to="user_id:u-1", channel="email")
    assert sent["status"] == "queued", sent
    assert await delivery.deliver_due() == 1

    [mail] = mailbox.messages
    assert mail["To"] == "ana@example.com"
    assert mail["From"] == "Alpine Outfitters <hello@alpine.example>"
    assert mail["Subject"] == "Ana, 10% off the Alpine jacket today"
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("http://omnicx.test/m/u/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html_part = mail.get_body(("html",))
    text_part = mail.get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    for brand_bit in ("Alpine Outfitters", "Karl Johans gate 1", "logo.png", "Hi Ana,"):
        assert brand_bit in html
    assert "See you on the trail" in text and "Unsubscribe: " + unsubscribe in text
    assert "/m/o/" in html  # open pixel
    assert "https://shop.alpine.example/p/alp-jkt" not in html.replace("url=https%3A", "")

    record = await message(client, admin_headers, sent["id"])
    assert record["status"] == "sent" and record["sent_at"] is not None
    events = [e["event"] for e in await timeline(client, admin_headers, "user_id:u-1")]
    assert "Message Queued" in events and "Message Sent" in events

    # The person opens the mail and follows the link: both recorded, the link redirects.
    pixel = next(p for p in html.split('"') if "/m/o/" in p)
    assert (await client.get(path_of(pixel))).headers["content-type"] == "image/gif"
    link = next(p for p in html.split('"') if "/m/c/" in p).replace("&amp;", "&")
    redirect = await client.get(path_of(link))
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://shop.alpine.example/p/alp-jkt"
    record = await message(client, admin_headers, sent["id"])
    assert record["status"] == "clicked" and record["opened_at"] is not None

    # RFC 8058 one-click: the mail client POSTs to the header's URL.
    response = await client.post(
        path_of(unsubscribe),
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text

    again = await send(client, admin_headers, to="user_id:u-1", channel="email")
    assert again["status"] == "skipped"
    assert "consent email/newsletter denied" in again["reason"]
    receipt = await send(
        client, admin_headers, to="user_id:u-1", message="receipt", data={"order_id": "O-7"}
    )
    assert receipt["status"] == "queued" and receipt["channel"] == "email"
    assert await delivery.deliver_due() == 1
    assert [m["Subject"] for m in mailbox.messages][-1] == "Your order O-7"
    assert "List-Unsubscribe" not in mailbox.messages[-1]
    assert len(mailbox.messages) == 2


async def test_unsubscribe_page_changes_nothing_until_posted(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    delivery: Delivery,
    mailbox: Mailbox,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    await customer(client, write_key, "u-2", email="bo@example.com", consent={"email": True})
    await send(client, admin_headers, to="user_id:u-2", channel="email")
    await delivery.deliver_due()
    url = mailbox.messages[0]["List-Unsubscribe"].strip("<>")

    page = await client.get(path_of(url))
    assert page.status_code == 200 and "<form method='post'>" in page.text
    assert (await send(client, admin_headers, to="user_id:u-2"))["status"] == "queued"

    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert (
        await client.post(path_of(forged), content="List-Unsubscribe=One-Click")
    ).status_code == 404

    response = await client.post(path_of(url), content="scope=channel")
    assert response.status_code == 200
    skipped = await send(client, admin_headers, to="user_id:u-2", channel="email")
    assert skipped["status"] == "skipped" and "email/all denied" in skipped["reason"]


async def test_hard_bounce_suppresses_the_address(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    delivery: Delivery,
    mailbox: Mailbox,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    mailbox.refuse.add("gone@example.com")
    await customer(client, write_key, "u-3", email="gone@example.com", consent={"email": True})
    first = await send(client, admin_headers, to="user_id:u-3", channel="email")
    await delivery.deliver_due()
    bounced = await message(client, admin_headers, first["id"])
    assert bounced["status"] == "bounced" and "550" in bounced["reason"]

    # Not even a transactional message goes to a suppressed address.
    receipt = await send(
        client,
        admin_headers,
        to="user_id:u-3",
        message="receipt",
        data={"order_id": "O-1"},
        channel="email",
    )
    assert receipt["status"] == "skipped" and "suppressed (hard_bounce)" in receipt["reason"]
    assert mailbox.messages == []
