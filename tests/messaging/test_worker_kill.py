"""A worker SIGKILLed between recording a send and finishing it delivers at most once.

A real ``omnicx worker`` process sends email to the test's SMTP server, which holds every DATA
answer until told. The worker is killed while the mails are in flight; the SMTP server then
accepts what it was given (the mail may well arrive: the worker just never heard). A second
worker resolves the lapsed claims: every interrupted message is ``failed`` (outcome unknown)
and no mail arrives twice; messages queued afterwards go exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from omnicx.db import Database
from omnicx.messaging.models import Message
from tests.conftest import SECRET
from tests.messaging.factories import customer, send, setup_brand_and_templates
from tests.messaging.servers import Mailbox

WAIT = 30.0  # bounds a broken test; nothing asserts on time


@contextmanager
def worker(database_url: str, smtp_port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")}
    env.update(
        OMNICX_DATABASE_URL=database_url,
        OMNICX_SECRET_KEY=SECRET,
        OMNICX_ENV="test",
        OMNICX_SMTP_HOST="127.0.0.1",
        OMNICX_SMTP_PORT=str(smtp_port),
        OMNICX_SMTP_TLS="none",
        OMNICX_MESSAGING_LEASE_SECONDS="2",
        OMNICX_WORKER_POLL_SECONDS="0.05",
    )
    with tempfile.TemporaryDirectory() as cwd:
        process = subprocess.Popen(
            [sys.executable, "-m", "omnicx.cli", "worker"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()


async def statuses(db: Database) -> dict[int, str]:
    async with db.session() as session:
        rows = await session.execute(select(Message.id, Message.status))
        return {row.id: row.status for row in rows}


async def until(db: Database, done: object) -> dict[int, str]:
    """Poll the delivery log until ``done(statuses)`` holds (bounded by WAIT)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        current = await statuses(db)
        if done(current):  # type: ignore[operator]
            return current
        assert loop.time() < deadline, f"gave up waiting: {current}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_killed_worker_delivers_each_message_at_most_once(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    db: Database,
    database_url: str,
    smtp: tuple[Controller, Mailbox],
) -> None:
    controller, mailbox = smtp
    await setup_brand_and_templates(client, admin_headers)
    for i in range(6):
        await customer(
            client, write_key, f"u-{i}", email=f"c{i}@example.com", consent={"email": True}
        )
    first = [
        (await send(client, admin_headers, to=f"user_id:u-{i}", channel="email"))["id"]
        for i in range(6)
    ]
    mailbox.hold = threading.Event()
    loop = asyncio.get_running_loop()
    with worker(database_url, controller.port) as process:
        started = await loop.run_in_executor(None, mailbox.data_started.wait, WAIT)
        assert started, "the worker never reached DATA"
        await until(db, lambda s: all(s[i] == "sending" for i in first))
        process.send_signal(signal.SIGKILL)
        process.wait()
    mailbox.hold.set()  # the server now accepts what the dead worker had handed over

    second = [
        (await send(client, admin_headers, to=f"user_id:u-{i}", channel="email"))["id"]
        for i in range(2)
    ]
    with worker(database_url, controller.port):
        final = await until(db, lambda s: all(s[i] in ("failed", "sent") for i in first + second))

    assert all(final[i] == "failed" for i in first)  # outcome unknown: never sent again
    assert all(final[i] == "sent" for i in second)
    per_message = Counter(int(m["X-OmniCX-Message-Id"]) for m in mailbox.messages)
    assert all(count == 1 for count in per_message.values()), per_message
    assert set(second) <= set(per_message)
    # Some interrupted mails did arrive (the server had them): once, and never again.
    assert set(per_message) & set(first)
    async with db.session() as session:
        reasons = (
            await session.execute(select(Message.reason).where(Message.id.in_(first)))
        ).scalars()
        assert all("interrupted" in (r or "") for r in reasons)
