"""``omnicx channels test CHANNEL --to EXTERNAL_ID``: a test message through the real provider."""

from __future__ import annotations

import httpx
import pytest
from aiosmtpd.controller import Controller
from typer.testing import Result

from tests.cli import omnicx
from tests.messaging.factories import customer
from tests.messaging.servers import Mailbox


async def channels_test(database_url: str, smtp_port: int, *args: str) -> Result:
    smtp = {"OMNICX_SMTP_HOST": "127.0.0.1", "OMNICX_SMTP_PORT": str(smtp_port)}
    return await omnicx(
        database_url, "channels", "test", *args, env={**smtp, "OMNICX_SMTP_TLS": "none"}
    )


@pytest.mark.slow
async def test_channels_test_sends_now_and_reports(
    client: httpx.AsyncClient,
    write_key: str,
    database_url: str,
    smtp: tuple[Controller, Mailbox],
) -> None:
    controller, mailbox = smtp
    await customer(client, write_key, "u-1", email="ana@example.com")
    done = await channels_test(database_url, controller.port, "email", "--to", "user_id:u-1")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "sent"
    assert [m["To"] for m in mailbox.messages] == ["ana@example.com"]
    assert "OmniCX test message" in mailbox.messages[0]["Subject"]

    no_phone = await channels_test(database_url, controller.port, "sms", "--to", "user_id:u-1")
    assert no_phone.exit_code == 1 and no_phone.stdout.strip() == "skipped"
    assert "sms: no provider" in no_phone.stderr
