"""Outgoing webhooks: the rendered JSON, POSTed and HMAC-signed, never to a private address.

Headers: ``X-OmniCX-Signature: t=<unix>,v1=<hex>`` (see :mod:`omnicx.messaging.signing`),
``X-OmniCX-Message-Id`` and ``Idempotency-Key`` (the message's key, so a receiver can drop a
repeat). SSRF: the host is resolved first and the request refused if any address it resolves
to is loopback, private, link-local, multicast, reserved or unspecified, unless it lies in
``OMNICX_WEBHOOK_ALLOWED_NETWORKS``; the connection then goes to the address that was checked
(the host name travels in ``Host`` and TLS SNI, and the certificate is checked against it), so a
DNS answer that changes between check and connect (rebinding) cannot redirect it. Redirects are
not followed. Requests go out on :mod:`~omnicx.messaging.providers.http1` keep-alive connections.

Answers: 2xx sent; 408, 429 and 5xx transient (``Retry-After`` honoured); other 4xx and 3xx
permanent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from omnicx.messaging.providers.base import (
    Channel,
    ConfigError,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
    WebhookContent,
)
from omnicx.messaging.providers.http1 import Http1Pool, HttpError, Response
from omnicx.messaging.signing import webhook_signature

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


class Refused(PermanentError):
    """The target is not an address webhooks may reach."""


async def resolve(host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientError(f"webhook: cannot resolve {host!r}: {exc}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def checked_target(url: str, allowed: Sequence[Network]) -> tuple[str, str, IPAddress]:
    """``(url to connect to, host, address)`` once the URL is known to be allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"webhook: not an http(s) URL: {url!r}")
    host = parts.hostname
    addresses = await resolve(host)
    for ip in addresses:
        if not is_public(ip) and not any(ip in net for net in allowed):
            raise Refused(f"webhook: {host} resolves to {ip}, a private or loopback address")
    ip = addresses[0]
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return urlunsplit(parts._replace(netloc=netloc)), host, ip


class WebhookProvider:
    channel: ClassVar[Channel] = Channel.webhook
    name: ClassVar[str] = "webhook"

    def __init__(
        self, *, key: bytes, allowed_networks: Sequence[str] = (), timeout: float = 10.0
    ) -> None:
        self.pool = Http1Pool(timeout=timeout)
        self.key = key
        try:
            self.allowed: list[Network] = [
                ipaddress.ip_network(n, strict=False) for n in allowed_networks
            ]
        except ValueError as exc:
            raise ConfigError(f"OMNICX_WEBHOOK_ALLOWED_NETWORKS: {exc}") from exc

    async def send(self, message: OutboundMessage) -> SendResult:
        if not isinstance(message.content, WebhookContent):
            raise PermanentError("webhook messages need webhook content")
        parts = urlsplit(message.to.value)
        _target, host, ip = await checked_target(message.to.value, self.allowed)
        body = orjson.dumps(message.content.payload)
        tls = parts.scheme == "https"
        headers = {
            "Host": parts.netloc.rpartition("@")[2],
            "Content-Type": "application/json",
            "User-Agent": "OmniCX-Webhook/1",
            "X-OmniCX-Message-Id": str(message.id),
            "Idempotency-Key": message.idempotency_key,
            "X-OmniCX-Signature": webhook_signature(self.key, int(time.time()), body),
        }
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            response = await self.pool.post(
                address=str(ip),
                port=parts.port or (443 if tls else 80),
                tls=tls,
                host=host,
                path=path,
                headers=headers,
                body=body,
            )
        except HttpError as exc:
            raise TransientError(f"webhook: {exc}") from exc
        status = response.status
        if 200 <= status < 300:
            return SendResult(
                provider_message_id=response.headers.get("x-request-id"),
                detail={"status": status},
            )
        if status in (408, 429) or status >= 500:
            raise TransientError(f"webhook: HTTP {status}", retry_after=_retry_after(response))
        raise PermanentError(f"webhook: HTTP {status}")

    async def close(self) -> None:
        await self.pool.aclose()


def _retry_after(response: Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None
