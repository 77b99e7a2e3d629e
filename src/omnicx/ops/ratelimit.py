"""Rate limits: per write key on ``/v1/*`` and per staff token on ``/api/*``; 429 with
``Retry-After`` beyond them.

A **fixed window** per key: ``OMNICX_RATE_LIMIT_INGEST`` requests a second per write key,
``OMNICX_RATE_LIMIT_API`` requests a minute per token (0 turns either off). Requests are
counted, not events: one ``/v1/batch`` of 500 events is one request, as Segment counts.

- **PostgreSQL**: the window lives in the ``rate_limits`` table, one row per key, bumped by one
  ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in autocommit, so every API process on every
  machine shares the same count; the cost is one indexed round trip per request (see
  ``bench/RESULTS.md``, Scale-out).
- **SQLite**: one process serves (``serve --workers`` refuses more), so the window is kept in
  that process's memory: a write per request would queue behind every ingest transaction.

Keys are the SHA-256 of the credential (the write key from HTTP Basic, the bearer token), never
the credential itself; a ``/v1`` call with its write key in the body, not in the header, is
counted per client address instead. The counter is bumped before the credential is checked, so
a flood with made-up keys is limited too (stale rows are pruned by the retention job).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from dataclasses import dataclass

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database
from omnicx.ops.models import RateLimitWindow

_UPSERT = text(
    "INSERT INTO rate_limits (key, window_start, count) VALUES (:key, :start, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    "count = CASE WHEN rate_limits.window_start = EXCLUDED.window_start "
    "THEN rate_limits.count + 1 ELSE 1 END, window_start = EXCLUDED.window_start "
    "RETURNING count"
)


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str  # "ingest" or "api"
    key: str
    per: int  # requests allowed per window
    seconds: int  # the window's length


def limit_for(path: str, authorization: str, client: str, *, ingest: int, api: int) -> Limit | None:
    """Which limit a request counts against, or None."""
    if path.startswith("/v1/") and ingest:
        write_key = _basic_user(authorization)
        who = f"k:{_digest(write_key)}" if write_key else f"ip:{client}"
        return Limit("ingest", f"ingest:{who}", ingest, 1)
    if path.startswith("/api/") and api:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return Limit("api", f"api:{_digest(token.strip())}", api, 60)
    return None


def _basic_user(authorization: str) -> str | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").split(":", 1)[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:40]


class Limiter:
    """Counts requests per key and window; :meth:`hit` says how long to wait (0: go ahead)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._memory: dict[str, tuple[int, int]] = {}

    async def hit(self, limit: Limit, now: float | None = None) -> float:
        now = time.time() if now is None else now
        start = int(now // limit.seconds) * limit.seconds
        if self.db.dialect == "postgresql":
            async with self.db.engine.connect() as conn:
                count = (await conn.execute(_UPSERT, {"key": limit.key, "start": start})).scalar()
                await conn.commit()
        else:
            window, count = self._memory.get(limit.key, (start, 0))
            count = count + 1 if window == start else 1
            self._memory[limit.key] = (start, count)
            if len(self._memory) > 100_000:  # made-up keys: forget windows that are over
                self._memory = {k: v for k, v in self._memory.items() if v[0] == start}
        if count is not None and count > limit.per:
            return max(1.0, math.ceil(start + limit.seconds - now))
        return 0.0


async def prune(session: AsyncSession, *, now: float) -> int:
    """Forget windows that ended more than an hour ago."""
    result = await session.execute(
        delete(RateLimitWindow).where(RateLimitWindow.window_start < int(now) - 3600)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
