"""Real servers the messaging tests send to: an SMTP server (aiosmtpd) and an HTTP receiver."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.live_server import free_port


@dataclass
class Mailbox:
    """What the SMTP server accepted; ``hold`` makes it wait before answering DATA (the mail is
    already accepted then)."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # RCPT answered 550
    data_started: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        # Accepted (queued for delivery) before the answer goes back, as real servers do: a
        # client that dies now never learns that its mail is on its way.
        self.messages.append(message)
        self.recipients += list(envelope.rcpt_tos)
        self.data_started.set()
        if self.hold is not None:
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
        return f"250 OK queued as {len(self.messages)}"

    def by_header(self, name: str, value: str) -> list[EmailMessage]:
        return [m for m in self.messages if m.get(name) == value]


@contextmanager
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A local HTTP server recording POSTs; ``statuses`` scripts its answers in order."""

    url: str
    received: list[Received]
    statuses: list[int]


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    received: list[Received] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = statuses.pop(0) if statuses else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            if status == 429:
                self.send_header("retry-after", "120")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpReceiver(f"http://127.0.0.1:{server.server_port}", received, statuses)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
