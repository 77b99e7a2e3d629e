"""What the HTTP providers (Twilio, web push, FCM, APNs) share: one request call that turns
transport failures into the error tree, and ``Retry-After`` parsing.

A timeout after the request was written may mean the service got it: we still call it transient,
because the delivery loop, not the provider, owns the at-most-once decision (it records the
attempt first and knows what the channel tolerates).
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from omnicx.messaging.providers.base import ConfigError, TransientError


async def request(
    client: httpx.AsyncClient, method: str, url: str, *, service: str, **kwargs: Any
) -> httpx.Response:
    """``client.request`` with network failures raised as :class:`TransientError`."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.UnsupportedProtocol as exc:
        raise ConfigError(f"{service}: unsupported URL {url!r}") from exc
    except httpx.TimeoutException as exc:
        raise TransientError(f"{service}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"{service}: {type(exc).__name__}: {exc}") from exc


def retry_after(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Seconds the service asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 5322 says UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or ``{}`` when it has none (error pages, empty bodies)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
