"""Delivery throughput: messages/s one worker moves from ``queued`` to ``sent``, per channel,
beside the raw rate of the provider call alone, measured in the same run.

For each backend and channel (in-app, webhook, email) the benchmark

1. creates a fresh database (a SQLite file, or ``omnicx_bench_<random>`` on PostgreSQL, dropped
   at the end), migrates it and creates ``--people`` profiles through the ingest service;
2. starts the receiving server in its own process (a minimal keep-alive HTTP/1.1 server for
   webhooks, aiosmtpd for email), so it does not share the worker's interpreter;
3. inserts ``--messages`` queued messages (already rendered, as :func:`service.submit` leaves
   them) and times one :class:`~omnicx.messaging.delivery.Delivery` draining them as the
   worker does (two passes per lane, batches of 200, 100 sends in flight, SMTP pool of 4): the
   claim transaction with its ``Message Sending`` events, the sends, the outcome transaction
   with its ``Message Sent`` events;
4. times the provider alone on the same number of messages at the same concurrency: the ceiling
   the delivery loop is compared with.

Run: ``.venv/bin/python bench/messaging.py [--backend sqlite|postgresql|both]
[--messages N] [--channels inapp,webhook,email]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import migrate
from omnicx.app import build_hooks
from omnicx.auth.service import SourceKind, create_source
from omnicx.db import Database, utcnow
from omnicx.messaging.delivery import Delivery, outbound
from omnicx.messaging.models import Message
from omnicx.messaging.providers.base import (
    Address,
    Content,
    EmailContent,
    InAppContent,
    Provider,
    WebhookContent,
)
from omnicx.messaging.providers.inapp import InAppProvider, InboxHub
from omnicx.messaging.providers.smtp import SmtpProvider
from omnicx.messaging.providers.webhook import WebhookProvider
from omnicx.profiles.record import IncomingEvent, record_events
from omnicx.settings import Settings

TARGETS = {"inapp": 2000, "webhook": 2000, "email": 500}
POSTGRES_URL = os.environ.get(
    "OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-secret-key-not-for-production"

HTTP_SERVER = r"""
import asyncio, sys
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

SMTP_SERVER = r"""
import sys, threading
from aiosmtpd.controller import Controller
from tests.live_server import free_port
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
port = free_port()
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print(port, flush=True)
threading.Event().wait()
"""


@contextmanager
def server_process(script: str) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"omnicx_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def make_people(db: Database, settings: Settings, people: int) -> list[str]:
    async def work(session: AsyncSession) -> list[str]:
        source, _key = await create_source(session, name="bench", kind=SourceKind.server)
        now = utcnow()
        events = [
            IncomingEvent(
                message_id=f"p-{i}",
                type="identify",
                event=None,
                user_id=f"u-{i}",
                anonymous_id=None,
                timestamp=now,
                traits={"email": f"p{i}@example.com", "first_name": "Ana"},
            )
            for i in range(people)
        ]
        outcomes = await record_events(
            session,
            source_id=source.id,
            channel="server",
            events=events,
            settings=settings,
            received_at=now,
            hooks=build_hooks(settings),
        )
        return [o.profile_id for o in outcomes if o.profile_id]

    return await db.transaction(work)


def content_for(channel: str) -> tuple[Content, str]:
    if channel == "inapp":
        return InAppContent(title="10% off today", body="The Alpine jacket is waiting."), "inapp"
    if channel == "webhook":
        return WebhookContent(payload={"offer": "Alpine jacket", "discount": 10}), "webhook"
    html = "<html><body><p>Hi Ana,</p><p>10% off the Alpine jacket today.</p></body></html>"
    return (
        EmailContent(
            subject="Ana, 10% off the Alpine jacket today",
            html=html,
            text="Hi Ana,\n\n10% off the Alpine jacket today.\n",
            from_email="hello@alpine.example",
            from_name="Alpine Outfitters",
            headers={"List-Unsubscribe": "<http://omnicx.test/m/u/1.x>"},
        ),
        "smtp",
    )


def address_for(channel: str, profile_id: str, i: int, port: int) -> Address:
    if channel == "inapp":
        return Address("profile", profile_id)
    if channel == "webhook":
        return Address("url", f"http://127.0.0.1:{port}/hook")
    return Address("email", f"p{i}@example.com")


async def enqueue(
    db: Database, channel: str, people: list[str], messages: int, port: int, tag: str
) -> None:
    content, provider = content_for(channel)
    now = utcnow()
    rows = [
        {
            "idempotency_key": f"{tag}-{channel}-{i}",
            "profile_id": people[i % len(people)],
            "template": "spring-sale",
            "category": "marketing",
            "topic": "newsletter",
            "requested": channel,
            "channel": channel,
            "provider": provider,
            "choice_reason": "requested",
            "status": "queued",
            "due_at": now - timedelta(seconds=1),
            "send_at": now,
            "attempts": 0,
            "to": asdict(address_for(channel, people[i % len(people)], i, port)),
            "content": {"type": type(content).__name__, **asdict(content)},
            "data": {},
            "history": [],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(messages)
    ]

    async def work(session: AsyncSession) -> None:
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Message), rows[start : start + 1000])

    await db.transaction(work)


def build_provider(channel: str, settings: Settings, port: int) -> Provider:
    if channel == "inapp":
        return InAppProvider(InboxHub())
    if channel == "webhook":
        return WebhookProvider(key=b"bench", allowed_networks=["127.0.0.0/8"])
    return SmtpProvider(host="127.0.0.1", port=port, tls="none", pool_size=settings.smtp_pool_size)


async def raw_rate(db: Database, provider: Provider, channel: str, concurrency: int) -> float:
    """The provider alone: the same messages, sent at the same concurrency, nothing recorded."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(
                    Message.id,
                    Message.idempotency_key,
                    Message.profile_id,
                    Message.channel,
                    Message.to,
                    Message.content,
                    Message.created_at,
                    Message.template,
                ).where(Message.channel == channel)
            )
        ).all()
    slots = asyncio.Semaphore(concurrency)
    messages = [outbound(row) for row in rows]

    async def one(message: Any) -> None:
        async with slots:
            await provider.send(message)

    start = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    return len(messages) / (time.perf_counter() - start)


async def run_channel(
    db: Database, settings: Settings, people: list[str], channel: str, messages: int, port: int
) -> tuple[float, float]:
    hooks = build_hooks(settings)
    provider = build_provider(channel, settings, port)
    await enqueue(db, channel, people, messages, port, "w")
    delivery = Delivery(db, settings, hooks, {provider.name: provider})
    start = time.perf_counter()
    handled = await delivery.drain(provider.name)
    assert handled == messages, f"{handled} of {messages} handled"
    worker_rate = messages / (time.perf_counter() - start)
    async with db.session() as session:
        sent = (
            await session.execute(
                select(func.count()).where(
                    Message.channel == channel, Message.status.in_(("sent", "delivered"))
                )
            )
        ).scalar_one()
    assert sent == messages, f"{sent} of {messages} sent"
    raw = await raw_rate(db, provider, channel, settings.messaging_concurrency)
    close = getattr(provider, "close", None)
    if close is not None:
        await close()
    return worker_rate, raw


def bench(backend: str, channels: list[str], messages: int, people: int) -> list[str]:
    lines = []
    with database(backend) as url:
        settings = Settings(database_url=url, secret_key=SECRET, env="test")
        migrate.upgrade(settings)
        with server_process(HTTP_SERVER) as http_port, server_process(SMTP_SERVER) as smtp_port:

            async def main() -> None:
                db = Database(settings)
                try:
                    who = await make_people(db, settings, people)
                    for channel in channels:
                        port = smtp_port if channel == "email" else http_port
                        rate, raw = await run_channel(db, settings, who, channel, messages, port)
                        target = TARGETS[channel]
                        line = (
                            f"| {backend} | {channel} | {messages} | {rate:,.0f} | {raw:,.0f} | "
                            f"{rate / raw:.2f} | {target:,} | {'yes' if rate >= target else 'no'} |"
                        )
                        print(line, flush=True)
                        lines.append(line)
                finally:
                    await db.dispose()

            asyncio.run(main())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--channels", default="inapp,webhook,email")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        "| backend | channel | messages | worker msg/s | raw provider calls/s | ratio | "
        "target msg/s | met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for backend in backends:
        bench(backend, args.channels.split(","), args.messages, args.people)


if __name__ == "__main__":
    main()
