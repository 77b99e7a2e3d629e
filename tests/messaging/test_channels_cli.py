"""``omnicx channels test CHANNEL --to EXTERNAL_ID``: a test message through the real provider."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import SECRET
from tests.messaging.factories import customer
from tests.messaging.servers import Mailbox


def channels_test(
    database_url: str, smtp_port: int, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")}
    env.update(
        OMNICX_DATABASE_URL=database_url,
        OMNICX_SECRET_KEY=SECRET,
        OMNICX_ENV="test",
        OMNICX_SMTP_HOST="127.0.0.1",
        OMNICX_SMTP_PORT=str(smtp_port),
        OMNICX_SMTP_TLS="none",
    )
    return subprocess.run(
        [sys.executable, "-m", "omnicx.cli", "channels", "test", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
    done = channels_test(database_url, controller.port, "email", "--to", "user_id:u-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "sent"
    assert [m["To"] for m in mailbox.messages] == ["ana@example.com"]
    assert "OmniCX test message" in mailbox.messages[0]["Subject"]

    no_phone = channels_test(database_url, controller.port, "sms", "--to", "user_id:u-1")
    assert no_phone.returncode == 1 and no_phone.stdout.strip() == "skipped"
    assert "sms: no provider" in no_phone.stderr
