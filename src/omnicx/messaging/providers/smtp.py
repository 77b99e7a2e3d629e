"""Email over SMTP (aiosmtplib), with a small pool of reused connections.

TLS: ``starttls`` upgrades a plain connection (port 587), ``tls`` is implicit TLS (465),
``none`` is for a local relay; certificates are verified unless ``OMNICX_SMTP_VERIFY_TLS=false``.

Each send is MAIL FROM, RCPT TO, DATA on a pooled connection. Errors map onto the tree:
a 5xx to RCPT (unknown mailbox) is a hard bounce (``PermanentError(prune=True)``: the address
goes on the suppression list); other 5xx answers are permanent; 4xx answers, refused
connections and timeouts before DATA are transient. A connection lost *during* DATA leaves the
outcome unknown (the server may have queued the mail): that is reported as permanent, so the
delivery loop never sends a possibly delivered email twice.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
from email.header import Header
from email.utils import formataddr, formatdate
from typing import ClassVar

import aiosmtplib

from omnicx.messaging.providers.base import (
    Channel,
    ConfigError,
    EmailContent,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
)

HARD_BOUNCE_CODES = {550, 551, 553}


def _header(value: str) -> str:
    """One header value: no line breaks (no header injection), RFC 2047 when not ASCII."""
    value = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=76)


def _part(kind: str, text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode(), istext=True)
    return (
        f'Content-Type: text/{kind}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + body.replace(b"\n", b"\r\n")


def build_email(message: OutboundMessage, content: EmailContent) -> bytes:
    """The message as MIME bytes: multipart/alternative, text then HTML, quoted-printable.

    Assembled by hand rather than with :class:`email.message.EmailMessage`, whose generator
    costs over a millisecond a message and would cap a worker near 500 emails/s on its own."""
    domain = content.from_email.rpartition("@")[2] or "omnicx.local"
    tag = hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:16]
    boundary = f"=_omnicx_{message.id}_{tag}"
    headers = [
        ("From", formataddr((content.from_name, content.from_email), charset="utf-8")),
        ("To", _header(message.to.value)),
        ("Subject", _header(content.subject)),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", f"<omnicx.{message.id}.{tag}@{domain}>"),
        ("X-OmniCX-Message-Id", str(message.id)),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    if content.reply_to:
        headers.append(("Reply-To", _header(content.reply_to)))
    headers += [(name, _header(value)) for name, value in content.headers.items()]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    sep = f"\r\n--{boundary}\r\n".encode()
    return (
        head
        + b"\r\nThis is a multi-part message in MIME format."
        + sep
        + _part("plain", content.text)
        + sep
        + _part("html", content.html)
        + f"\r\n--{boundary}--\r\n".encode()
    )


class SmtpProvider:
    channel: ClassVar[Channel] = Channel.email
    name: ClassVar[str] = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        timeout: float = 30.0,
        pool_size: int = 4,
    ) -> None:
        if tls not in ("starttls", "tls", "none"):
            raise ConfigError(f"OMNICX_SMTP_TLS: {tls!r} is not starttls, tls or none")
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.verify_tls, self.timeout = verify_tls, timeout
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)
        self.connections_opened = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.tls == "tls",
            start_tls=True if self.tls == "starttls" else False,
            validate_certs=self.verify_tls,
            timeout=self.timeout,
        )
        try:
            await smtp.connect()
            if self.username:
                await smtp.login(self.username, self.password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise ConfigError(f"smtp: login refused: {exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise TransientError(f"smtp: cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.connections_opened += 1
        return smtp

    async def send(self, message: OutboundMessage) -> SendResult:
        if not isinstance(message.content, EmailContent):
            raise PermanentError("email messages need email content")
        data = build_email(message, message.content)
        async with self._slots:
            smtp = None if self._idle.empty() else self._idle.get_nowait()
            if smtp is not None and not smtp.is_connected:
                smtp = None
            reused = smtp is not None
            if smtp is None:
                smtp = await self._connect()
            try:
                try:
                    await self._envelope(smtp, message)
                except TransientError:
                    if not reused:
                        raise
                    # The server dropped the pooled connection while idle: nothing was sent.
                    smtp.close()
                    smtp = await self._connect()
                    await self._envelope(smtp, message)
                result = await self._data(smtp, data)
            except BaseException:
                smtp.close()
                raise
            self._idle.put_nowait(smtp)
            return result

    async def _envelope(self, smtp: aiosmtplib.SMTP, message: OutboundMessage) -> None:
        sender = message.content.from_email  # type: ignore[union-attr]
        try:
            await smtp.mail(sender)
            await smtp.rcpt(message.to.value)
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise _answer(exc.code, exc.message, recipient=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _answer(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(f"smtp: {type(exc).__name__}: {exc}") from exc

    async def _data(self, smtp: aiosmtplib.SMTP, data: bytes) -> SendResult:
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            raise _answer(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise PermanentError(
                f"smtp: connection lost during DATA, outcome unknown (not retried): {exc}"
            ) from exc
        return SendResult(provider_message_id=response.message[:500] or None)

    async def close(self) -> None:
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


def _answer(code: int, text: str, *, recipient: bool = False) -> Exception:
    if 400 <= code < 500:
        return TransientError(f"smtp: {code} {text}")
    return PermanentError(f"smtp: {code} {text}", prune=recipient and code in HARD_BOUNCE_CODES)
