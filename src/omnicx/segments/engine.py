"""Real-time membership: who is in which segment, kept current as things happen.

- The ingest transaction enqueues each touched profile with *why* (event names, trait keys set,
  commerce, consent) in ``segment_work``: one small insert per batch, so ingest stays fast and
  nothing is lost (the row commits with the events).
- A worker job claims queued profiles (``SKIP LOCKED``; on PostgreSQL a transaction-scoped
  advisory lock per profile serialises two workers on one person), re-evaluates only the
  segments whose dependencies match the reasons, for that profile only, one query each, in
  dependency order (a segment built on another sees the other's new membership).
- Entering and leaving are conditional writes (``… WHERE active = false`` / ``= true``), so each
  change is emitted once as a ``Segment Entered`` / ``Segment Exited`` timeline event, which
  journeys hear through the projectors.
- Conditions that change with time alone (windows, "days ago") get a durable timer per segment
  and profile at the next moment the answer can change: a due-time queue, not a periodic scan.
- A full recompute uses the set-based compilation of the same definition and applies the
  difference the same way; it agrees with incremental membership by construction, and tests
  check it against random event streams.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import metrics, timers
from omnicx.commerce.projector import HANDLED as COMMERCE_EVENTS
from omnicx.db import Database, dialect_insert, utcnow
from omnicx.hooks import ALL_PROFILES, Hooks, StoredEvent
from omnicx.profiles.internal import InternalEvent, record_internal_many
from omnicx.profiles.models import Profile
from omnicx.segments.compiler import Compiler
from omnicx.segments.language import Dependencies, Node, dependencies, parse
from omnicx.segments.models import Segment, SegmentMembership, SegmentWork
from omnicx.segments.timing import next_change

RECHECK_TIMER = "segment.recheck"
RECOMPUTE_TIMER = "segment.recompute"
ENTERED, EXITED = "Segment Entered", "Segment Exited"
COMMERCE_SIGNALS = COMMERCE_EVENTS | {
    "Cart Abandoned",
    "Pickup Ready",
    "Order Collected",
    "Order Partially Collected",
    "Pickup Expired",
    "Pickup Cancelled",
}


@dataclass(frozen=True)
class Loaded:
    id: str
    name: str
    node: Node
    deps: Dependencies


async def load(session: AsyncSession, ids: Iterable[str] | None = None) -> list[Loaded]:
    """Segments in dependency order (a segment after those it is built on)."""
    stmt = select(Segment.id, Segment.name, Segment.definition)
    if ids is not None:
        stmt = stmt.where(Segment.id.in_(list(ids)))
    loaded = {}
    for sid, name, definition in await session.execute(stmt):
        node = parse(definition)
        loaded[sid] = Loaded(sid, name, node, dependencies(node))
    return order(loaded)


def order(loaded: dict[str, Loaded]) -> list[Loaded]:
    out: list[Loaded] = []
    placed: set[str] = set()

    def visit(seg: Loaded, trail: tuple[str, ...]) -> None:
        if seg.id in placed:
            return
        if seg.id in trail:
            raise ValueError(f"segments refer to each other in a cycle: {' → '.join(trail)}")
        for dep in sorted(seg.deps.segments):
            if dep in loaded:
                visit(loaded[dep], (*trail, seg.id))
        placed.add(seg.id)
        out.append(seg)

    for seg in loaded.values():
        visit(seg, ())
    return out


def affected(segments: Sequence[Loaded], reasons: dict[str, Any]) -> set[str]:
    """Segments whose answer the reasons can change (their dependents follow on change)."""
    if reasons.get("all") or reasons.get("created"):  # a new profile may match "nothing yet"
        return {s.id for s in segments}
    events, traits = set(reasons.get("events", ())), set(reasons.get("traits", ()))
    out = set(reasons.get("segments", ()))
    for s in segments:
        d = s.deps
        if (
            d.events & events
            or d.traits & traits
            or (d.commerce and reasons.get("commerce"))
            or (d.consent and reasons.get("consent"))
            or (d.computed and reasons.get("computed"))
        ):
            out.add(s.id)
    return out


def merge_reasons(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, list):
            into[key] = sorted(set(into.get(key, [])) | set(value))
        else:
            into[key] = bool(into.get(key)) or bool(value)
    return into


def trait_keys(event: StoredEvent) -> set[str]:
    """The profile traits an event can have set (as ``profiles.record`` applies them)."""
    context_traits = event.context.get("traits")
    keys = set(context_traits) if isinstance(context_traits, dict) else set()
    if event.type == "identify":
        keys |= set(event.traits)
    elif event.type == "group":
        keys.add("group_id")
    return keys


def reasons_of(event: StoredEvent) -> dict[str, Any]:
    return {
        "events": [event.event] if event.event else [],
        "traits": sorted(trait_keys(event)),
        "commerce": event.event in COMMERCE_SIGNALS,
        "consent": "consent" in event.context,
    }


# --- the ingest side -----------------------------------------------------------------------


async def enqueue(session: AsyncSession, items: dict[str, dict[str, Any]]) -> None:
    if items:
        await session.execute(
            dialect_insert(session, SegmentWork),
            [{"profile_id": pid, "reasons": why} for pid, why in items.items()],
        )


async def project(session: AsyncSession, events: Sequence[StoredEvent]) -> None:
    """Projector: queue each touched profile once per batch, with every reason."""
    queued: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev.event in (ENTERED, EXITED):
            continue  # dependents are re-evaluated where the change happens
        merge_reasons(queued.setdefault(ev.profile_id, {}), reasons_of(ev))
    await enqueue(session, queued)


async def on_change(session: AsyncSession, changes: dict[str, dict[str, Any]]) -> None:
    everyone = changes.get(ALL_PROFILES)
    if everyone is not None:  # recompute what it can affect instead of queueing everyone
        for seg in affected(await load(session), everyone):
            await timers.schedule(
                session,
                kind=RECOMPUTE_TIMER,
                key=f"{RECOMPUTE_TIMER}:{seg}",
                due_at=utcnow(),
                payload={"segment": seg},
            )
    await enqueue(
        session, {pid: dict(what) for pid, what in changes.items() if pid != ALL_PROFILES}
    )


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    await session.execute(delete(SegmentMembership).where(SegmentMembership.profile_id == from_))
    await session.execute(
        update(SegmentWork).where(SegmentWork.profile_id == from_).values(profile_id=into)
    )
    await enqueue(session, {into: {"all": True}})


async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
    for model in (SegmentMembership, SegmentWork):
        await session.execute(delete(model).where(model.profile_id.in_(profile_ids)))


# --- evaluation ----------------------------------------------------------------------------


def _lock_key(*parts: str) -> int:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def evaluate(
    session: AsyncSession, segments: Sequence[Loaded], profile_id: str, now: datetime
) -> dict[str, bool]:
    """Each segment's answer for one profile, in one query."""
    if not segments:
        return {}
    compiler = Compiler(session.get_bind().dialect.name, now, "one")
    columns = [
        case((compiler.compile(s.node), True), else_=False).label(f"s{i}")
        for i, s in enumerate(segments)
    ]
    row = (
        await session.execute(
            select(*columns).where(
                Profile.id == profile_id, Profile.merged_into.is_(None), Profile.erased_at.is_(None)
            )
        )
    ).one_or_none()
    if row is None:
        return {}
    return {s.id: bool(row[i]) for i, s in enumerate(segments)}


class Engine:
    """Applies membership changes and runs the queue; one per process."""

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    async def process_profile(
        self,
        session: AsyncSession,
        segments: Sequence[Loaded],
        profile_id: str,
        reasons: dict[str, Any],
        now: datetime,
    ) -> None:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("profile", profile_id)}
            )
        todo = affected(segments, reasons)
        if not todo:
            return
        # Read the profile's memberships once (under the lock): a check whose answer did not
        # change writes nothing.
        rows = await session.execute(
            select(SegmentMembership.segment_id, SegmentMembership.active).where(
                SegmentMembership.profile_id == profile_id
            )
        )
        current: dict[str, bool] = {row.segment_id: row.active for row in rows}
        for seg in segments:  # dependency order
            if seg.id not in todo:
                continue
            answer = (await evaluate(session, [seg], profile_id, now)).get(seg.id)
            if answer is None:
                return  # merged away or erased meanwhile
            if answer != current.get(seg.id, False) and await self.apply(
                session, seg, [profile_id] if answer else [], [] if answer else [profile_id], now
            ):
                todo |= {s.id for s in segments if seg.id in s.deps.segments}
            if seg.deps.time:
                await self.schedule_recheck(session, seg, profile_id, now)

    async def schedule_recheck(
        self, session: AsyncSession, seg: Loaded, profile_id: str, now: datetime
    ) -> None:
        key = f"{RECHECK_TIMER}:{seg.id}:{profile_id}"
        when = await next_change(session, seg.node, profile_id, now)
        if when is None:
            await timers.cancel(session, key=key)
        else:
            await timers.schedule(
                session,
                kind=RECHECK_TIMER,
                key=key,
                due_at=when,
                payload={"segment": seg.id, "profile": profile_id},
            )

    async def apply(
        self,
        session: AsyncSession,
        seg: Loaded,
        entered: Sequence[str],
        exited: Sequence[str],
        now: datetime,
    ) -> bool:
        """Record entries and exits that are real changes; emit one event for each."""
        changed: list[InternalEvent] = []
        for part in _chunks(entered):
            stmt = dialect_insert(session, SegmentMembership)
            stmt = stmt.on_conflict_do_update(
                index_elements=["segment_id", "profile_id"],
                set_={"active": True, "changes": SegmentMembership.changes + 1, "entered_at": now},
                where=SegmentMembership.active.is_(False),
            ).returning(SegmentMembership.profile_id, SegmentMembership.changes)
            rows = [
                {
                    "segment_id": seg.id,
                    "profile_id": pid,
                    "active": True,
                    "changes": 1,
                    "entered_at": now,
                }
                for pid in part
            ]
            for pid, n in (await session.execute(stmt, rows)).all():
                changed.append(self._event(seg, pid, ENTERED, n, now))
        for part in _chunks(exited):
            stmt = (
                update(SegmentMembership)
                .where(
                    SegmentMembership.segment_id == seg.id,
                    SegmentMembership.profile_id.in_(part),
                    SegmentMembership.active.is_(True),
                )
                .values(active=False, changes=SegmentMembership.changes + 1, exited_at=now)
                .returning(SegmentMembership.profile_id, SegmentMembership.changes)
                .execution_options(synchronize_session=False)
            )
            for pid, n in (await session.execute(stmt)).all():
                changed.append(self._event(seg, pid, EXITED, n, now))
        await record_internal_many(session, changed, hooks=self.hooks)
        return bool(changed)

    def _event(
        self, seg: Loaded, profile_id: str, name: str, n: int, now: datetime
    ) -> InternalEvent:
        return InternalEvent(
            profile_id=profile_id,
            event=name,
            message_id=f"segment:{seg.id}:{profile_id}:{n}",
            timestamp=now,
            properties={"segment_id": seg.id, "segment_name": seg.name},
        )

    async def recheck(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        """Timer: a time window of this segment may have moved for this profile."""
        segments = await load(session)
        await self.process_profile(
            session, segments, payload["profile"], {"segments": [payload["segment"]]}, now
        )

    async def run_queue(self, db: Database, hooks: Hooks, now: datetime, limit: int = 200) -> int:
        """Job: claim queued profiles and re-evaluate what their reasons can affect."""

        async def work(session: AsyncSession) -> int:
            stmt = (
                select(SegmentWork)
                .order_by(SegmentWork.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = list((await session.execute(stmt)).scalars())
            if not rows:
                return 0
            per_profile: dict[str, dict[str, Any]] = {}
            for row in rows:
                merge_reasons(per_profile.setdefault(row.profile_id, {}), row.reasons)
            segments = await load(session)
            for profile_id in sorted(per_profile):
                await self.process_profile(
                    session, segments, profile_id, per_profile[profile_id], now
                )
            await session.execute(
                delete(SegmentWork).where(SegmentWork.id.in_([r.id for r in rows]))
            )
            return len(rows)

        return await db.transaction(work)

    async def recompute(self, db: Database, segment_id: str, now: datetime) -> tuple[int, int]:
        """Full recompute of one segment in its own transaction; returns (entered, exited)."""

        async def work(session: AsyncSession) -> tuple[int, int]:
            return await self.recompute_in(session, segment_id, now)

        return await db.transaction(work)

    async def recompute_in(
        self, session: AsyncSession, segment_id: str, now: datetime
    ) -> tuple[int, int]:
        loaded = await load(session)
        seg = next((s for s in loaded if s.id == segment_id), None)
        if seg is None:
            return 0, 0
        should = set(await members_by_query(session, seg, now))
        current = set(
            (
                await session.execute(
                    select(SegmentMembership.profile_id).where(
                        SegmentMembership.segment_id == seg.id,
                        SegmentMembership.active.is_(True),
                    )
                )
            ).scalars()
        )
        entered, exited = sorted(should - current), sorted(current - should)
        await self.apply(session, seg, entered, exited, now)
        if seg.deps.time:
            for profile_id in sorted(should | current):
                await self.schedule_recheck(session, seg, profile_id, now)
        dependents = [s.id for s in loaded if seg.id in s.deps.segments]
        if dependents and (entered or exited):
            await enqueue(session, {p: {"segments": dependents} for p in entered + exited})
        await session.execute(update(Segment).where(Segment.id == seg.id).values(computed_at=now))
        return len(entered), len(exited)

    async def recompute_timer(
        self, session: AsyncSession, payload: dict[str, Any], now: datetime
    ) -> None:
        """Timer: a segment was created or changed; compute its members."""
        await self.recompute_in(session, payload["segment"], now)


async def members_by_query(session: AsyncSession, seg: Loaded, now: datetime) -> list[str]:
    compiler = Compiler(session.get_bind().dialect.name, now, "all")
    stmt = select(Profile.id).where(
        Profile.merged_into.is_(None), Profile.erased_at.is_(None), compiler.compile(seg.node)
    )
    return list((await session.execute(stmt)).scalars())


async def count_by_query(
    session: AsyncSession, node: Node, now: datetime, sample: int
) -> tuple[int, list[str]]:
    compiler = Compiler(session.get_bind().dialect.name, now, "all")
    condition = compiler.compile(node)
    live = (Profile.merged_into.is_(None), Profile.erased_at.is_(None), condition)
    total = (
        await session.execute(select(func.count()).select_from(Profile).where(*live))
    ).scalar_one()
    ids = (
        await session.execute(select(Profile.id).where(*live).order_by(Profile.id).limit(sample))
    ).scalars()
    return total, list(ids)


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def queue_depth(session: AsyncSession, now: datetime) -> list[metrics.Sample]:
    """Scrape-time gauge: profiles waiting for their segments to be re-evaluated."""
    queued = (await session.scalar(select(func.count()).select_from(SegmentWork))) or 0
    help_ = "Profiles queued for segment re-evaluation."
    return [metrics.Sample("segment_work_queue", help_, queued)]
