"""The delivery loop: claim due messages, send them, record what happened.

One *lane* per provider: a pass claims up to ``OMNICX_MESSAGING_BATCH_SIZE`` of that provider's
due messages (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers share the queue;
SQLite has one writer), moves them to ``sending`` with a lease and **commits before anything
leaves**; then sends them (up to ``OMNICX_MESSAGING_CONCURRENCY`` at once, within the provider's
rate limit) and records every outcome in one more transaction. Lanes run independently, so a
slow or failing provider never delays another.

Outcomes: a send the provider accepted is ``sent`` (or ``delivered``); a transient error (or a
configuration error, which an operator may fix) goes back to ``queued`` with exponential backoff
(``OMNICX_MESSAGING_RETRY_SECONDS`` doubling per attempt, capped, ``Retry-After`` honoured) until
``OMNICX_MESSAGING_MAX_ATTEMPTS``, then ``failed``; a permanent error is ``failed``, or
``bounced`` when the address is dead (it then goes on the suppression list).

Delivery guarantee per channel, when a worker dies mid-send (its lease lapses after
``OMNICX_MESSAGING_LEASE_SECONDS`` and the next pass resolves the message):

- in-app: **exactly once** in the inbox; the send is idempotent, so it is simply retried;
- email, SMS, push, web push, webhooks: **at most once**; the outcome is unknown, so the message
  is marked ``failed`` (``interrupted``) and never sent again. Webhooks carry an
  ``Idempotency-Key`` so a receiver can also drop repeats of retried transient failures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database, utcnow
from omnicx.hooks import Hooks
from omnicx.messaging import events
from omnicx.messaging.models import Message
from omnicx.messaging.policies import suppress, suppressed
from omnicx.messaging.providers.base import (
    Address,
    Channel,
    EmailContent,
    InAppContent,
    OutboundMessage,
    PermanentError,
    Provider,
    ProviderError,
    PushContent,
    SendResult,
    SmsContent,
    TransientError,
    WebhookContent,
)
from omnicx.settings import Settings

log = logging.getLogger(__name__)

RETRY_SAFE = frozenset({Channel.inapp.value})
CONTENT_TYPES: dict[str, type[Any]] = {
    t.__name__: t for t in (EmailContent, SmsContent, PushContent, InAppContent, WebhookContent)
}
Outcome = SendResult | BaseException
CLAIMED = (
    Message.id,
    Message.idempotency_key,
    Message.profile_id,
    Message.template,
    Message.category,
    Message.topic,
    Message.channel,
    Message.provider,
    Message.to,
    Message.content,
    Message.attempts,
    Message.history,
    Message.created_at,
)


class RateLimit:
    """A token bucket: at most ``rate`` sends a second, bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


def outbound(row: Row[Any]) -> OutboundMessage:
    content = dict(row.content)
    kind = CONTENT_TYPES[content.pop("type")]
    return OutboundMessage(
        id=row.id,
        idempotency_key=row.idempotency_key,
        channel=Channel(row.channel),
        profile_id=row.profile_id or "",
        to=Address(**row.to),
        content=kind(**content),
        metadata={"created_at": row.created_at.isoformat(), "template": row.template},
    )


def backoff(settings: Settings, attempt: int, retry_after: float | None) -> float:
    delay: float = settings.messaging_retry_seconds * 2.0 ** max(0, attempt - 1)
    delay = min(delay, settings.messaging_retry_max_seconds)
    return max(delay, retry_after or 0.0)


@dataclass
class Delivery:
    db: Database
    settings: Settings
    hooks: Hooks
    providers: Mapping[str, Provider]
    clock: Callable[[], datetime] = utcnow

    def __post_init__(self) -> None:
        rates = self.settings.messaging_rate_limits
        self.limits = {name: RateLimit(rate) for name, rate in rates.items() if rate > 0}
        self.slots = {
            name: asyncio.Semaphore(self.settings.messaging_concurrency) for name in self.providers
        }

    async def deliver_due(self) -> int:
        """One pass of every lane, side by side, after resolving lapsed claims."""
        await self.recover()
        counts = await asyncio.gather(*(self.run_pass(name) for name in self.providers))
        return sum(counts)

    async def run_pass(self, name: str, *, only: int | None = None) -> int:
        """Claim, send and record one batch of ``name``'s due messages (or just message
        ``only``); how many were claimed."""
        claimed = await self.db.transaction(lambda s: self._claim(s, name, self.clock(), only))
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(name, row) for row in claimed))
        await self.db.transaction(lambda s: self._record(s, claimed, outcomes, self.clock()))
        return len(claimed)

    async def _claim(
        self, session: AsyncSession, name: str, now: datetime, only: int | None = None
    ) -> list[Row[Any]]:
        due = (
            select(Message.id)
            .where(Message.status == "queued", Message.provider == name, Message.due_at <= now)
            .order_by(Message.due_at, Message.id)
            .limit(self.settings.messaging_batch_size)
            .with_for_update(skip_locked=True)
        )
        if only is not None:
            due = due.where(Message.id == only)
        lease = now + timedelta(seconds=self.settings.messaging_lease_seconds)
        stmt = (
            update(Message)
            .where(Message.id.in_(due.scalar_subquery()))
            .values(status="sending", attempts=Message.attempts + 1, due_at=lease, updated_at=now)
            .returning(*CLAIMED)
            .execution_options(synchronize_session=False)
        )
        rows = list((await session.execute(stmt)).all())
        blocked = await suppressed(
            session,
            self.settings,
            [(r.to["kind"], r.to["value"]) for r in rows if r.to["kind"] not in ("profile", "url")],
        )
        keep = []
        for row in rows:
            reason = blocked.get((row.to["kind"], row.to["value"]))
            if reason is None:
                keep.append(row)
                continue
            await self._set(session, row, "skipped", now, reason=f"address suppressed ({reason})")
        return keep

    async def _send(self, name: str, row: Row[Any]) -> Outcome:
        provider = self.providers[name]
        async with self.slots[name]:
            limit = self.limits.get(name)
            if limit is not None:
                await limit.take()
            try:
                return await provider.send(outbound(row))
            except ProviderError as exc:
                return exc
            except Exception as exc:  # a provider bug: recorded on the message, never lost
                log.exception("provider %s raised on message %s", name, row.id)
                return exc

    async def _record(
        self,
        session: AsyncSession,
        rows: Sequence[Row[Any]],
        outcomes: Sequence[Outcome],
        now: datetime,
    ) -> None:
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, SendResult):
                await self._set(
                    session,
                    row,
                    outcome.status,
                    now,
                    provider_message_id=outcome.provider_message_id,
                )
            elif isinstance(outcome, ProviderError) and not isinstance(outcome, PermanentError):
                retry_after = outcome.retry_after if isinstance(outcome, TransientError) else None
                if row.attempts < self.settings.messaging_max_attempts:
                    delay = backoff(self.settings, row.attempts, retry_after)
                    await self._set(
                        session,
                        row,
                        "queued",
                        now,
                        reason=f"attempt {row.attempts} failed: {outcome}",
                        due_at=now + timedelta(seconds=delay),
                    )
                else:
                    await self._set(
                        session,
                        row,
                        "failed",
                        now,
                        reason=f"gave up after {row.attempts}: {outcome}",
                    )
            elif isinstance(outcome, PermanentError) and outcome.prune:
                await suppress(
                    session,
                    self.settings,
                    kind=row.to["kind"],
                    value=row.to["value"],
                    reason="hard_bounce" if row.to["kind"] in ("email", "phone") else "dead",
                    detail=str(outcome),
                    now=now,
                )
                await self._set(session, row, "bounced", now, reason=str(outcome))
            else:
                text = str(outcome) if isinstance(outcome, ProviderError) else repr(outcome)
                await self._set(session, row, "failed", now, reason=text)

    async def _set(
        self,
        session: AsyncSession,
        row: Row[Any],
        status: str,
        now: datetime,
        *,
        reason: str | None = None,
        due_at: datetime | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        """Move a claimed (``sending``) message on, unless something else already did."""
        statuses = ["sent", "delivered"] if status == "delivered" else [status]
        history = [*row.history] + [events.entry(s, now, reason=reason) for s in statuses]
        values: dict[str, Any] = {
            "status": status,
            "reason": reason[:1000] if reason else None,
            "due_at": due_at,
            "history": history,
            "updated_at": now,
        }
        if status in ("sent", "delivered"):
            values["sent_at"] = now
            values["provider_message_id"] = (provider_message_id or "")[:500] or None
        if status == "delivered":
            values["delivered_at"] = now
        result = await session.execute(
            update(Message)
            .where(Message.id == row.id, Message.status == "sending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return
        fields = row._asdict()
        for s in statuses:
            key = f".{row.attempts}" if s == "queued" else ""
            await events.record(
                session,
                self.hooks,
                profile_id=row.profile_id,
                message=fields,
                status=s,
                at=now,
                key=key,
                reason=reason,
                attempt=row.attempts,
            )

    async def recover(self) -> int:
        """Resolve messages whose worker died mid-send: in-app again, others ``failed``."""
        now = self.clock()

        async def work(session: AsyncSession) -> int:
            stale = (
                select(Message.id)
                .where(Message.status == "sending", Message.due_at <= now)
                .limit(1000)
                .with_for_update(skip_locked=True)
            )
            rows = list(
                (await session.execute(select(*CLAIMED).where(Message.id.in_(stale)))).all()
            )
            for row in rows:
                if row.channel in RETRY_SAFE:
                    await self._set(
                        session, row, "queued", now, reason="interrupted; retried", due_at=now
                    )
                else:
                    await self._set(
                        session,
                        row,
                        "failed",
                        now,
                        reason="interrupted: the worker stopped during the send; outcome "
                        "unknown, not retried (at most once)",
                    )
            return len(rows)

        return await self.db.transaction(work)
