"""A lean HTTP/1.1 client for webhooks: keep-alive connections per origin on asyncio streams.

Why not httpx here: a webhook is one small POST, and httpx spends about a millisecond of CPU
on each (its pool, anyio, h11), which caps a worker near 700 webhooks/s on a busy two-core
machine; this client spends tens of microseconds. It does only what webhooks need: POST with a
body, ``Content-Length`` or chunked responses, ``Connection: close``, TLS with SNI and
certificate checks, a timeout on the whole exchange, and connecting to an address that was
checked beforehand (the SSRF guard) while naming the host in ``Host`` and SNI.

Errors: :class:`ConnectionFailed` (nothing was written: safe to retry) and
:class:`ExchangeFailed` (the request may have reached the server).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


class HttpError(Exception):
    pass


class ConnectionFailed(HttpError):
    """Could not connect (refused, unreachable, TLS handshake failed)."""


class ExchangeFailed(HttpError):
    """The connection broke or timed out mid-exchange, or the answer was not HTTP."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


Origin = tuple[str, int, bool, str]  # address, port, tls, server name
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Http1Pool:
    def __init__(self, *, timeout: float, max_idle_per_origin: int = 100) -> None:
        self.timeout = timeout
        self.max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[Conn]] = {}
        self._tls = ssl.create_default_context()

    async def post(
        self,
        *,
        address: str,
        port: int,
        tls: bool,
        host: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        origin = (address, port, tls, host)
        head = [f"POST {path or '/'} HTTP/1.1", f"Host: {headers.pop('Host', host)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        idle = self._idle.get(origin)
        if idle:
            conn = idle.pop()
            try:
                return await self._exchange(origin, conn, request)
            except _Stale:
                pass  # the server closed the idle connection before reading: nothing was sent
        conn = await self._connect(origin)
        try:
            return await self._exchange(origin, conn, request)
        except _Stale as exc:
            raise ExchangeFailed("the server closed the connection without answering") from exc

    async def _connect(self, origin: Origin) -> Conn:
        address, port, tls, host = origin
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_connection(
                    address,
                    port,
                    ssl=self._tls if tls else None,
                    server_hostname=host if tls else None,
                    limit=MAX_HEAD,
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"cannot connect to {host}: {exc!r}") from exc

    async def _exchange(self, origin: Origin, conn: Conn, request: bytes) -> Response:
        reader, writer = conn
        keep = False
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(request)
                await writer.drain()
                response, keep = await _read_response(reader)
        except _Stale:
            writer.close()
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise ExchangeFailed(f"{type(exc).__name__}: {exc}") from exc
        idle = self._idle.setdefault(origin, [])
        if keep and len(idle) < self.max_idle:
            idle.append(conn)
        else:
            writer.close()
        return response

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for _reader, writer in conns:
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    """The connection was closed before any byte of an answer arrived."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Stale from exc
            raise
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            continue  # 100 Continue and friends precede the real answer
        break
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError("answer too large")
        body = await reader.readexactly(length)
    elif status in (204, 304):
        body = b""
    else:
        body = await reader.read(MAX_BODY)
        keep = False
    return Response(status, headers, body), keep


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ValueError("answer too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
