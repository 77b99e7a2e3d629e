"""Durable timers: a due-time table any number of workers share.

A timer has a kind (which handler runs it), a unique key (so rescheduling replaces, never
duplicates: ``cart.abandon:42``), a due time and a JSON payload. :func:`run_due` claims due
timers (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers never take the same one; SQLite has
one writer at a time), runs each handler in a savepoint of one transaction and deletes the timer
in that same transaction: a handler's effects and the timer's removal commit together, so a crash
re-runs the timer rather than losing or doubling it. A handler that raises is rolled back to its
savepoint; the error is recorded on the timer, which is retried with exponential backoff and
parked (``due_at`` NULL) after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from omnicx import metrics
from omnicx.db import Base, BigId, Database, JSONType, UTCDateTime, dialect_insert
from omnicx.hooks import Hooks

MAX_ATTEMPTS = 8


class Timer(Base):
    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))


async def schedule(
    session: AsyncSession, *, kind: str, key: str, due_at: datetime, payload: dict[str, Any]
) -> None:
    """Create the timer ``key``, or move it to ``due_at`` with a new payload."""
    stmt = dialect_insert(session, Timer).values(
        kind=kind, key=key, due_at=due_at, payload=payload, attempts=0
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "kind": kind,
            "due_at": due_at,
            "payload": payload,
            "attempts": 0,
            "last_error": None,
        },
    )
    await session.execute(stmt)


async def cancel(session: AsyncSession, *, key: str) -> None:
    await session.execute(delete(Timer).where(Timer.key == key))


async def pending(session: AsyncSession, *, key: str) -> Timer | None:
    return (await session.execute(select(Timer).where(Timer.key == key))).scalar_one_or_none()


async def run_due(
    db: Database,
    hooks: Hooks,
    *,
    now: datetime,
    limit: int = 200,
    kinds: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> int:
    """Run up to ``limit`` timers due at ``now`` (of ``kinds`` if given, but not of
    ``exclude``); returns how many ran (or failed)."""

    async def work(session: AsyncSession) -> int:
        stmt = select(Timer).where(Timer.due_at <= now)
        if kinds is not None:
            stmt = stmt.where(Timer.kind.in_(sorted(kinds)))
        if exclude:
            stmt = stmt.where(Timer.kind.not_in(sorted(exclude)))
        stmt = stmt.order_by(Timer.due_at, Timer.id).limit(limit).with_for_update(skip_locked=True)
        timers = list((await session.execute(stmt)).scalars())
        for timer in timers:
            await _run_one(session, hooks, timer, now)
        return len(timers)

    return await db.transaction(work)


async def _run_one(session: AsyncSession, hooks: Hooks, timer: Timer, now: datetime) -> None:
    handler = hooks.timers.get(timer.kind)
    if handler is None:
        _failed(timer, now, f"no handler for timer kind {timer.kind!r}")
        return
    timer_id, due_at = timer.id, timer.due_at
    metrics.TIMER_LATENESS.labels(timer.kind).observe(
        (now - due_at).total_seconds() if due_at else 0
    )
    try:
        async with session.begin_nested():
            await handler(session, dict(timer.payload), now)
    except Exception as exc:  # recorded on the timer and retried: one bad timer blocks no other
        _failed(timer, now, f"{type(exc).__name__}: {exc}")
        return
    # The handler may have cancelled its own timer, or moved it (same key) to a new time: only
    # the occurrence that ran is removed.
    session.expunge(timer)
    await session.execute(delete(Timer).where(Timer.id == timer_id, Timer.due_at == due_at))


def _failed(timer: Timer, now: datetime, error: str) -> None:
    timer.attempts += 1
    timer.last_error = error[:1000]
    timer.due_at = (
        None if timer.attempts >= MAX_ATTEMPTS else now + timedelta(seconds=2**timer.attempts)
    )


async def depth(session: AsyncSession, now: datetime) -> list[metrics.Sample]:
    """Scrape-time gauges: timers due now per kind, parked ones, the oldest due one's lateness."""
    due = (
        await session.execute(
            select(Timer.kind, func.count(), func.min(Timer.due_at))
            .where(Timer.due_at <= now)
            .group_by(Timer.kind)
        )
    ).all()
    parked = (
        await session.scalar(select(func.count()).select_from(Timer).where(Timer.due_at.is_(None)))
    ) or 0
    help_due = "Durable timers due now and not yet run, by kind."
    samples = [metrics.Sample("timers_due", help_due, n, (("kind", kind),)) for kind, n, _ in due]
    oldest = min((first for *_, first in due if first is not None), default=None)
    samples.append(
        metrics.Sample(
            "timers_oldest_due_seconds",
            "How late the oldest due timer is (0: none due).",
            (now - oldest).total_seconds() if oldest else 0.0,
        )
    )
    samples.append(
        metrics.Sample("timers_parked", "Timers parked after repeated failures.", parked)
    )
    return samples
