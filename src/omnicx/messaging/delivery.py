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
from typing import Any, cast

from sqlalchemy import Row, String, Table, bindparam, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import metrics
from omnicx.db import Database, utcnow
from omnicx.hooks import Hooks
from omnicx.messaging import events
from omnicx.messaging.models import Message
from omnicx.messaging.policies import consent_allows, suppress, suppressed
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
from omnicx.profiles.models import Consent
from omnicx.settings import Settings

log = logging.getLogger(__name__)

RETRY_SAFE = frozenset({Channel.inapp.value})
PASSES_PER_LANE = 2  # concurrent passes per provider: sends overlap the database work
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
    Message.updated_at,
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


async def _consents(
    session: AsyncSession, profile_ids: set[str]
) -> dict[str, dict[tuple[str, str], str]]:
    out: dict[str, dict[tuple[str, str], str]] = {}
    if profile_ids:
        rows = await session.execute(
            select(Consent.profile_id, Consent.channel, Consent.topic, Consent.status).where(
                Consent.profile_id.in_(profile_ids)
            )
        )
        for pid, channel, topic, status in rows:
            out.setdefault(pid, {})[(channel, topic)] = status
    return out


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


@dataclass(frozen=True)
class Change:
    row: Row[Any]
    status: str
    reason: str | None = None
    due_at: datetime | None = None
    provider_message_id: str | None = None


_T = cast(Table, Message.__table__)
UPDATE_CLAIMED = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.status == "sending")
    .values(
        {
            name: bindparam(f"b_{name}", type_=_T.c[name].type)
            for name in (
                "status",
                "reason",
                "due_at",
                "history",
                "updated_at",
                "sent_at",
                "delivered_at",
                "provider_message_id",
            )
        }
    )
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

    async def drain(self, name: str) -> int:
        """Run ``name``'s lane until its queue has nothing due (benchmarks, tools)."""

        async def lane() -> int:
            handled = 0
            while ran := await self.run_pass(name):
                handled += ran
            return handled

        return sum(await asyncio.gather(*(lane() for _ in range(PASSES_PER_LANE))))

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
        consents = await _consents(session, {r.profile_id for r in rows if r.profile_id})
        keep, skipped = [], []
        for row in rows:
            reason = blocked.get((row.to["kind"], row.to["value"]))
            if reason is not None:
                skipped.append(Change(row, "skipped", f"address suppressed ({reason})"))
                continue
            # Consent is checked again as the message leaves: a customer who opted out while it
            # waited (quiet hours, a retry) does not get it.
            ok, why = consent_allows(
                consents.get(row.profile_id, {}),
                channel=row.channel,
                topic=row.topic,
                category=row.category,
                implied=self.settings.messaging_implied_consent,
            )
            if ok:
                keep.append(row)
            else:
                skipped.append(Change(row, "skipped", f"{why} at send time"))
        await events.record_many(
            session,
            self.hooks,
            [
                events.internal_event(
                    r.profile_id, r._asdict(), "sending", now, f".{r.attempts}", attempt=r.attempts
                )
                for r in keep
                if r.profile_id is not None
            ],
        )
        await self._apply(session, skipped, now)
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
        changes = []
        for row, outcome in zip(rows, outcomes, strict=True):
            metrics.observe_send(row.channel, row.provider, outcome)
            if isinstance(outcome, SendResult):
                changes.append(
                    Change(row, outcome.status, provider_message_id=outcome.provider_message_id)
                )
            elif isinstance(outcome, ProviderError) and not isinstance(outcome, PermanentError):
                retry_after = outcome.retry_after if isinstance(outcome, TransientError) else None
                if row.attempts < self.settings.messaging_max_attempts:
                    delay = backoff(self.settings, row.attempts, retry_after)
                    changes.append(
                        Change(
                            row,
                            "queued",
                            f"attempt {row.attempts} failed: {outcome}",
                            due_at=now + timedelta(seconds=delay),
                        )
                    )
                else:
                    changes.append(
                        Change(row, "failed", f"gave up after {row.attempts}: {outcome}")
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
                changes.append(Change(row, "bounced", str(outcome)))
            else:
                text = str(outcome) if isinstance(outcome, ProviderError) else repr(outcome)
                changes.append(Change(row, "failed", text))
        await self._apply(session, changes, now)

    async def _apply(self, session: AsyncSession, changes: Sequence[Change], now: datetime) -> None:
        """Move claimed (``sending``) messages on in one statement, unless something else already
        did (a lapsed claim resolved meanwhile), and add their timeline events in one more."""
        if not changes:
            return
        live = dict(
            (
                await session.execute(
                    select(Message.id, Message.profile_id)
                    .where(Message.id.in_([c.row.id for c in changes]), Message.status == "sending")
                    .with_for_update()
                )
            ).all()
        )
        params, timeline = [], []
        for change in changes:
            row = change.row
            if row.id not in live:
                continue
            statuses = ["sent", "delivered"] if change.status == "delivered" else [change.status]
            reason = change.reason[:1000] if change.reason else None
            sent = change.status in ("sent", "delivered")
            params.append(
                {
                    "b_id": row.id,
                    "b_status": change.status,
                    "b_reason": reason,
                    "b_due_at": change.due_at,
                    "b_history": [
                        *row.history,
                        events.entry("sending", row.updated_at, attempt=row.attempts),
                        *(events.entry(s, now, reason=reason) for s in statuses),
                    ],
                    "b_updated_at": now,
                    "b_sent_at": now if sent else None,
                    "b_delivered_at": now if change.status == "delivered" else None,
                    "b_provider_message_id": (change.provider_message_id or "")[:500] or None,
                }
            )
            profile_id = live[row.id]
            if profile_id is not None:
                fields = row._asdict()
                timeline += [
                    events.internal_event(
                        profile_id,
                        fields,
                        s,
                        now,
                        f".{row.attempts}" if s == "queued" else "",
                        reason=reason,
                        attempt=row.attempts,
                    )
                    for s in statuses
                ]
        if params:
            await session.execute(UPDATE_CLAIMED, params)
        await events.record_many(session, self.hooks, timeline)

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
            await self._apply(
                session,
                [
                    Change(row, "queued", "interrupted; retried", due_at=now)
                    if row.channel in RETRY_SAFE
                    else Change(
                        row,
                        "failed",
                        "interrupted: the worker stopped during the send; outcome unknown, "
                        "not retried (at most once)",
                    )
                    for row in rows
                ],
                now,
            )
            return len(rows)

        return await self.db.transaction(work)


async def queue_depth(session: AsyncSession, now: datetime) -> list[metrics.Sample]:
    """Scrape-time gauges: messages waiting to leave (due now) and in flight, per provider."""
    rows = (
        await session.execute(
            select(Message.provider, Message.status, func.count())
            .where(
                ((Message.status == "queued") & (Message.due_at <= now))
                | (Message.status == "sending")
            )
            .group_by(Message.provider, Message.status)
        )
    ).all()
    help_ = "Messages due to leave (queued) or in a provider's hands (sending), per provider."
    return [
        metrics.Sample("messages_queue", help_, n, (("provider", p or "none"), ("status", s)))
        for p, s, n in rows
    ]


async def blank_bodies(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Blank the rendered content and template data of up to ``limit`` finished messages made
    before ``before`` (retention); status, channel, timestamps and history stay for reports."""
    ids = list(
        (
            await session.execute(
                select(Message.id)
                .where(
                    Message.created_at < before,
                    Message.status.notin_(("queued", "sending")),
                    sql_cast(Message.content, String) != "{}",  # not blanked already
                )
                .order_by(Message.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if ids:
        await session.execute(
            update(Message).where(Message.id.in_(ids)).values(content={}, data={})
        )
    return len(ids)
