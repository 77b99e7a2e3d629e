"""The request middleware: request id, access log, HTTP metrics, rate limits, body size cap,
console headers.

Plain ASGI rather than ``BaseHTTPMiddleware``: it costs a few microseconds on the ingest hot
path, and streamed responses (and WebSockets) pass through untouched.

- **Rate limits**: see :mod:`omnicx.ops.ratelimit`; a refused request gets 429
  ``rate_limited`` with ``Retry-After`` (seconds) and never reaches the route.
- **Size**: no request body may exceed ``OMNICX_MAX_REQUEST_BYTES`` (413 ``payload_too_large``),
  whether it declares its length or streams it; routes keep their own tighter limits (ingest's
  32 KB per event and 500 KB per batch).
- **Console headers**: responses under ``/console`` carry a Content-Security-Policy
  (``OMNICX_CONSOLE_CSP``), ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``,
  ``Cross-Origin-Opener-Policy: same-origin`` and a Permissions-Policy denying camera,
  microphone and geolocation; every response carries ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnicx import metrics
from omnicx.errors import error_body
from omnicx.ops.logs import REQUEST_ID, request_id_from
from omnicx.ops.ratelimit import Limiter, limit_for
from omnicx.settings import Settings

log = logging.getLogger("omnicx.access")

CONSOLE_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTP exception, so routes that read the body pass it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body is larger than {limit} bytes")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, limiter: Limiter) -> None:
        self.app = app
        self.limiter = limiter
        self.ingest_rate = settings.rate_limit_ingest
        self.api_rate = settings.rate_limit_api
        self.max_bytes = settings.max_request_bytes
        self.csp = settings.console_csp.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        request_id = request_id or uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, headers, request_id)
        finally:
            REQUEST_ID.reset(token)

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
    ) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        console = path == "/console" or path.startswith("/console/")
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                extra = [
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
                if console:
                    extra += [(b"content-security-policy", self.csp), *CONSOLE_HEADERS]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        declared = headers.get(b"content-length", b"")
        try:
            limit = limit_for(
                path,
                headers.get(b"authorization", b"").decode("latin-1"),
                (scope.get("client") or ("-",))[0],
                ingest=self.ingest_rate,
                api=self.api_rate,
            )
            wait = await self.limiter.hit(limit) if limit else 0.0
            if limit and wait:
                metrics.RATE_LIMITED.labels(limit.scope).inc()
                message = f"more than {limit.per} requests in {limit.seconds}s; retry later"
                await _refuse(send_wrapper, path, 429, "rate_limited", message, int(wait))
                return
            if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if response_started:
                raise
            message = f"body is larger than {self.max_bytes} bytes"
            await _refuse(send_wrapper, path, 413, "payload_too_large", message)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_REQUESTS.labels(scope["method"], template, f"{status // 100}xx").inc()
            log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={
                    "request_id": request_id,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


async def _refuse(
    send: Send, path: str, status: int, code: str, message: str, retry_after: int | None = None
) -> None:
    content = error_body(code, message)
    if path.startswith("/v1/"):  # tracking SDKs read these at the top level (see errors.py)
        content.update(success=False, code=code, message=message)
    body = orjson.dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
