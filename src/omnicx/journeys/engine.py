"""The engine: enter customers, advance their runs, take them out, from the timers table.

Three timer kinds: ``journey.enter`` (a matching event happened), ``journey.run:{run}`` (the
run's one pending wake-up: a wait elapsed, an awaited event came, a timeout), and
``journey.goal:{run}`` (the goal event came: converted at once, its wake-up cancelled).

**Batches.** The handlers are registered with ``hooks.timer`` like any other, so any worker
(and ``timers.run_due``) runs them. The first journey timer a transaction runs claims every due
journey timer it can (``FOR UPDATE SKIP LOCKED``, up to ``OMNICX_JOURNEY_BATCH_SIZE``, always
including itself) and handles them together: runs are loaded and locked in one query, entries
checked and inserted in one, and steps, timer changes, timeline events and the claimed timers'
removal are written in a few bulk statements, in the same transaction, so each timer's effects
and its removal still commit together. The other claimed timers' handlers, when ``run_due``
reaches them, find them done. If the batch fails, it is rolled back to its savepoint and the
transaction goes on one timer at a time (each in ``run_due``'s own savepoint, so one bad timer
is retried with backoff and blocks no other).

**The pump.** ``omnicx worker`` runs :meth:`Engine.pump` as a job: it claims due journey
timers itself, a batch per transaction, without ``run_due``'s per-timer savepoint and delete
(the worker's ``run_due`` leaves the journey kinds to it, ``Hooks.pumped``). A batch that fails
is handed to ``run_due`` for these kinds, which goes one timer at a time; ``run_due`` called
directly (tests with a controlled clock) runs journey timers through :meth:`Engine.handle`.

**Exactly once.** A run is locked (``FOR UPDATE``) while it advances, and a wake-up carries the
``visit`` it was set for: a run that moved on ignores it. Entries are serialised per journey
and customer by an advisory lock on PostgreSQL (SQLite has one writer) before the re-entry
policy is checked; the entry key is unique. Each executed node is a ``journey_steps`` row
unique on ``(run, node, visit)``.

**Pause.** A paused journey's due enter and run timers move themselves
``OMNICX_JOURNEY_HOLD_SECONDS`` later without acting; goals still convert (taking a customer
out sends nothing).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Select, Table, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import metrics, timers
from omnicx.db import Database, dialect_insert
from omnicx.hooks import Hooks
from omnicx.journeys.catalog import Definitions
from omnicx.journeys.definition import Goal, JourneyDef
from omnicx.journeys.matching import matches
from omnicx.journeys.models import Journey, JourneyRun, JourneyStep
from omnicx.journeys.projector import ENTER, GOAL, RUN, run_key
from omnicx.journeys.runner import HOLDOUT, LIVE_RUN, Batch, Runner, bucket
from omnicx.journeys.schedule import SWEEP, Sweeper
from omnicx.profiles.internal import record_internal_many
from omnicx.profiles.models import Event, Profile
from omnicx.profiles.record import chunks
from omnicx.settings import Settings
from omnicx.timers import Timer

log = logging.getLogger(__name__)
KINDS = (ENTER, RUN, GOAL)
DONE, ONE_BY_ONE = "omnicx.journeys.done", "omnicx.journeys.one_by_one"
BUSY_RETRY = timedelta(seconds=1)
PUMP_SECONDS = 1.0  # a worker pass's time on journeys before its other timers and jobs
TIMER_COLUMNS = (Timer.id, Timer.kind, Timer.key, Timer.due_at, Timer.payload)

__all__ = ["Engine", "bucket", "live_profiles", "may_enter"]


class StepConflict(RuntimeError):
    """A step was recorded already: another transaction advanced this run first."""


def lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big", signed=True)


class Engine:
    def __init__(self, settings: Settings, hooks: Hooks, definitions: Definitions) -> None:
        self.settings = settings
        self.hooks = hooks
        self.definitions = definitions
        self.runner = Runner(settings, hooks, definitions)
        self.hold = timedelta(seconds=settings.journey_hold_seconds)
        self.batch_size = settings.journey_batch_size

    def register(self) -> None:
        for kind in KINDS:
            self.hooks.timer(kind, self.handle)
        self.hooks.timer(SWEEP, Sweeper(self.settings, self.definitions))
        self.hooks.jobs.append(self.pump)
        self.hooks.pumped.update(KINDS)

    async def pump(self, db: Database, hooks: Hooks, now: datetime) -> int:
        """Worker job: due journey timers in batches, each batch one transaction, for up to
        ``PUMP_SECONDS``; how many were handled.

        The same work as :meth:`handle`, without ``run_due``'s savepoint and delete per timer
        (a batch's timers are removed in one statement). A batch that fails is handed to
        ``run_due``, which goes one timer at a time with its retries and backoff."""
        del hooks  # the engine's own
        total, started = 0, time.monotonic()
        while time.monotonic() - started < PUMP_SECONDS:

            async def work(session: AsyncSession) -> int:
                rows = list((await session.execute(self._due(now))).all())
                if not rows:
                    return 0
                for row in rows:  # as run_due would have observed them
                    lateness = (now - row.due_at).total_seconds()
                    metrics.TIMER_LATENESS.labels(row.kind).observe(lateness)
                try:
                    async with session.begin_nested():
                        await self.process(session, rows, now)
                except Exception:
                    log.exception("journey batch of %d failed; one by one", len(rows))
                    return -1
                return len(rows)

            ran = await db.transaction(work)
            if ran < 0:
                one_by_one = await timers.run_due(
                    db, self.hooks, now=now, kinds=KINDS, limit=self.batch_size
                )
                return total + one_by_one
            if ran == 0:
                break
            total += ran
        return total

    def _due(self, now: datetime) -> Select[Any]:
        return (
            select(*TIMER_COLUMNS)
            .where(Timer.kind.in_(KINDS), Timer.due_at <= now)
            .order_by(Timer.due_at, Timer.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )

    async def handle(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        """Timer handler for every journey kind: handle this timer, with the others due."""
        done: set[str] = session.info.setdefault(DONE, set())
        key = payload["key"]
        if key in done:
            return
        current = (
            await session.execute(select(*TIMER_COLUMNS).where(Timer.key == key))
        ).one_or_none()
        if current is None or current.due_at is None or current.due_at > now:
            return  # handled (and perhaps rescheduled) earlier in this transaction
        if not session.info.get(ONE_BY_ONE):
            rows = await self._claim(session, now, current)
            try:
                async with session.begin_nested():
                    await self.process(session, rows, now)
            except Exception:  # handled again one timer at a time, each with its own retries
                log.exception("journey batch of %d failed; going one by one", len(rows))
                session.info[ONE_BY_ONE] = True
            else:
                done.update(r.key for r in rows)
                return
        await self.process(session, [current], now)
        done.add(key)

    async def _claim(self, session: AsyncSession, now: datetime, current: Row[Any]) -> list[Any]:
        rows = list((await session.execute(self._due(now))).all())
        if all(r.id != current.id for r in rows):
            rows.append(current)
        return rows

    async def process(self, session: AsyncSession, rows: Sequence[Any], now: datetime) -> None:
        """Handle claimed journey timers and remove them, all in the caller's transaction."""
        batch = Batch(now)
        journey_ids = {r.payload.get("journey") for r in rows if r.kind == ENTER}
        run_ids = sorted({int(r.payload["run"]) for r in rows if r.kind != ENTER})
        runs: dict[int, JourneyRun] = {}
        if run_ids:
            stmt = (
                select(JourneyRun)
                .where(JourneyRun.id.in_(run_ids))
                .order_by(JourneyRun.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            runs = {r.id: r for r in (await session.execute(stmt)).scalars()}
            journey_ids |= {r.journey_id for r in runs.values()}
            # Held (the identity map is weak) so messaging and waits find them without a query.
            batch.keep.extend(
                (
                    await session.execute(
                        select(Profile).where(Profile.id.in_({r.profile_id for r in runs.values()}))
                    )
                ).scalars()
            )
        journeys = {
            j.id: j
            for j in (
                await session.execute(select(Journey).where(Journey.id.in_(journey_ids)))
            ).scalars()
        }
        batch.names = {j.id: j.name for j in journeys.values()}
        for row in (r for r in rows if r.kind == GOAL):
            self._goal(batch, row, runs.get(int(row.payload["run"])))
        for row in (r for r in rows if r.kind == RUN):
            await self._wake(session, batch, row, runs.get(int(row.payload["run"])), journeys)
        enters = [r for r in rows if r.kind == ENTER]
        if enters:
            await self._enter(session, batch, enters, journeys)
        await self.runner.send_pending(session, batch)
        await self._write(session, batch, [r.id for r in rows])

    # --- the three kinds ----------------------------------------------------------------------

    def _goal(self, batch: Batch, row: Any, run: JourneyRun | None) -> None:
        if run is None or run.status not in LIVE_RUN:
            return
        event = row.payload["event"]
        if run.status == "waiting":  # the wait it was in ends here (a split keeps its arm)
            outcome = HOLDOUT if run.variant == HOLDOUT else "goal"
            batch.resolve(run, outcome, {"resolved_at": batch.now.isoformat(), "by": "goal"})
        run.visit += 1
        batch.step(run, "$goal", "goal", "converted", {"event": event["name"]})
        batch.cancel(run_key(run.id))
        batch.finish(
            run,
            "converted",
            "goal",
            goal_event=event["name"],
            goal_message_id=event["message_id"],
        )

    async def _wake(
        self,
        session: AsyncSession,
        batch: Batch,
        row: Any,
        run: JourneyRun | None,
        journeys: dict[str, Journey],
    ) -> None:
        payload = row.payload
        if run is None or run.status not in LIVE_RUN or run.visit != payload["visit"]:
            return  # finished, or moved on since this wake-up was set
        journey = journeys.get(run.journey_id)
        if journey is None or journey.status == "stopped":
            return
        if journey.status == "paused":
            batch.schedule(RUN, row.key, batch.now + self.hold, payload)
            return
        definition = await self.definitions.get(session, run.journey_id, run.version)
        await self.runner.advance(session, batch, run, definition, resume=payload)

    async def _enter(
        self,
        session: AsyncSession,
        batch: Batch,
        rows: list[Any],
        journeys: dict[str, Journey],
    ) -> None:
        todo = []
        for row in rows:
            journey = journeys.get(row.payload["journey"])
            if journey is None or journey.status not in ("live", "paused"):
                continue
            if journey.status == "paused":
                batch.schedule(ENTER, row.key, batch.now + self.hold, row.payload)
                continue
            todo.append((row, journey))
        if not todo:
            return
        owners = await live_profiles(
            session, {row.payload["profile"] for row, _ in todo}, batch.keep
        )
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            todo = await self._hold_busy(session, batch, todo, owners)
        pairs: list[tuple[str, str]] = sorted(
            {(j.id, owner) for r, j in todo if (owner := owners[r.payload["profile"]]) is not None}
        )
        if not pairs:
            return
        if postgres:
            await session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(k) FROM "
                    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ks"
                ),
                {"keys": sorted({lock_key("journey", j, p) for j, p in pairs})},
            )
        history: dict[tuple[str, str], list[tuple[str, datetime]]] = {pair: [] for pair in pairs}
        keys: set[tuple[str, str, str]] = set()
        existing = await session.execute(
            select(
                JourneyRun.journey_id,
                JourneyRun.profile_id,
                JourneyRun.status,
                JourneyRun.entered_at,
                JourneyRun.entry_key,
            ).where(
                JourneyRun.journey_id.in_({j for j, _ in pairs}),
                JourneyRun.profile_id.in_({p for _, p in pairs}),
            )
        )
        for j, p, status, entered_at, entry_key in existing:
            history.setdefault((j, p), []).append((status, entered_at))
            keys.add((j, p, entry_key))
        values = []
        for row, journey in todo:
            profile_id = owners[row.payload["profile"]]
            if profile_id is None:
                continue
            assert journey.live_version is not None
            definition = await self.definitions.get(session, journey.id, journey.live_version)
            pair, entry_key = (journey.id, profile_id), row.payload["entry_key"]
            if (*pair, entry_key) in keys or not may_enter(definition, history[pair], batch.now):
                continue
            keys.add((*pair, entry_key))
            history[pair].append(("active", batch.now))
            values.append(
                {
                    "journey_id": journey.id,
                    "version": journey.live_version,
                    "profile_id": profile_id,
                    "entry_key": entry_key,
                    "status": "active",
                    "node": definition.start,
                    "visit": 0,
                    "context": row.payload["event"]["properties"],
                    "entered_at": batch.now,
                    "_trigger": row.payload["event"]["name"],
                    "_since": datetime.fromisoformat(row.payload["event"]["timestamp"]),
                    "_message": row.payload["event"]["message_id"],
                }
            )
        if not values:
            return
        stmt = (
            dialect_insert(session, JourneyRun)
            .on_conflict_do_nothing(index_elements=["journey_id", "profile_id", "entry_key"])
            .returning(JourneyRun)
        )
        params = [{k: v for k, v in value.items() if not k.startswith("_")} for value in values]
        created = list((await session.execute(stmt, params)).scalars())
        trigger = {(v["journey_id"], v["profile_id"], v["entry_key"]): v for v in values}
        early = await self._early_goals(session, created, trigger)
        for run in sorted(created, key=lambda r: r.id):
            batch.event(
                run,
                "Journey Entered",
                "entered",
                trigger=trigger[(run.journey_id, run.profile_id, run.entry_key)]["_trigger"],
            )
            goal_event = early.get(run.id)
            if goal_event is not None:  # converted between the trigger and the entry
                run.visit += 1
                batch.step(run, "$goal", "goal", "converted", {"event": goal_event[0]})
                batch.finish(
                    run,
                    "converted",
                    "goal",
                    goal_event=goal_event[0],
                    goal_message_id=goal_event[1],
                    before_entry=True,
                )
                continue
            definition = await self.definitions.get(session, run.journey_id, run.version)
            await self.runner.advance(session, batch, run, definition, resume=None)

    async def _hold_busy(
        self,
        session: AsyncSession,
        batch: Batch,
        todo: list[tuple[Any, Journey]],
        owners: dict[str, str | None],
    ) -> list[tuple[Any, Journey]]:
        """Lock the entering profiles of journeys with a goal; put off those being written.

        Ingest locks a profile's row before storing its events, and its projector looks for the
        runs a goal event converts. Holding the row while entering means a goal event is either
        committed before the entry (which then finds it, :meth:`_early_goals`) or projected after
        it (and finds the run). A row locked right now is skipped, never waited for, and its
        entry retried a second later, so this cannot deadlock with ingest."""
        with_goal = []
        for row, journey in todo:
            assert journey.live_version is not None
            definition = await self.definitions.get(session, journey.id, journey.live_version)
            if definition.goal is not None and owners[row.payload["profile"]] is not None:
                with_goal.append(row)
        if not with_goal:
            return todo
        wanted = sorted({cast(str, owners[row.payload["profile"]]) for row in with_goal})
        stmt = (
            select(Profile.id)
            .where(Profile.id.in_(wanted))
            .order_by(Profile.id)
            .with_for_update(skip_locked=True)
        )
        got = set((await session.execute(stmt)).scalars())
        busy = {row.key for row in with_goal if owners[row.payload["profile"]] not in got}
        for row in with_goal:
            if row.key in busy:
                batch.schedule(ENTER, row.key, batch.now + BUSY_RETRY, row.payload)
        return [(row, journey) for row, journey in todo if row.key not in busy]

    async def _early_goals(
        self,
        session: AsyncSession,
        created: list[JourneyRun],
        trigger: dict[tuple[str, str, str], dict[str, Any]],
    ) -> dict[int, tuple[str, str]]:
        """Runs whose goal event came after the trigger but before the entry: run → event."""
        goals: dict[int, tuple[Goal, dict[str, Any]]] = {}
        for run in created:
            definition = await self.definitions.get(session, run.journey_id, run.version)
            if definition.goal is not None:
                goals[run.id] = (
                    definition.goal,
                    trigger[(run.journey_id, run.profile_id, run.entry_key)],
                )
        if not goals:
            return {}
        by_profile: dict[str, list[JourneyRun]] = {}
        for run in created:
            if run.id in goals:
                by_profile.setdefault(run.profile_id, []).append(run)
        stmt = (
            select(
                Event.profile_id, Event.event, Event.message_id, Event.timestamp, Event.properties
            )
            .where(
                Event.profile_id.in_(sorted(by_profile)),
                Event.event.in_(sorted({g.spec.event for g, _ in goals.values()})),
                Event.timestamp >= min(t["_since"] for _, t in goals.values()),
            )
            .order_by(Event.timestamp, Event.id)
        )
        out: dict[int, tuple[str, str]] = {}
        for ev in (await session.execute(stmt)).all():
            for run in by_profile.get(ev.profile_id, ()):
                goal, started = goals[run.id]
                since = started["_since"]
                if (
                    run.id not in out
                    and ev.message_id != started["_message"]
                    and ev.timestamp >= since
                    and (goal.within is None or ev.timestamp <= since + goal.within)
                    and matches(goal.spec, ev.event, ev.properties, run.context)
                ):
                    out[run.id] = (ev.event, ev.message_id)
        return out

    # --- writing ------------------------------------------------------------------------------

    async def _write(self, session: AsyncSession, batch: Batch, timer_ids: list[int]) -> None:
        # Core tables, not the ORM: run_due holds Timer objects of this transaction, which an
        # ORM bulk statement would try to synchronise.
        steps, timer_table = cast(Table, JourneyStep.__table__), cast(Table, Timer.__table__)
        add_step = (
            dialect_insert(session, steps)
            .on_conflict_do_nothing(index_elements=["run_id", "node", "visit"])
            .returning(steps.c.id)
        )
        for part in chunks(list(batch.steps.values())):
            if len((await session.execute(add_step, part)).all()) != len(part):
                raise StepConflict("a step of this batch was recorded already")
        if batch.resolved:
            await session.execute(
                update(steps)
                .where(steps.c.run_id == bindparam("r"), steps.c.visit == bindparam("v"))
                .values(outcome=bindparam("outcome"), detail=bindparam("detail")),
                batch.resolved,
            )
        await session.flush()
        await session.execute(delete(timer_table).where(timer_table.c.id.in_(timer_ids)))
        if batch.cancels:
            await session.execute(
                delete(timer_table).where(timer_table.c.key.in_(sorted(batch.cancels)))
            )
        if batch.schedules:
            upsert = dialect_insert(session, timer_table)
            upsert = upsert.on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "kind": upsert.excluded.kind,
                    "due_at": upsert.excluded.due_at,
                    "payload": upsert.excluded.payload,
                    "attempts": 0,
                    "last_error": None,
                },
            )
            await session.execute(upsert, list(batch.schedules.values()))
        await record_internal_many(session, batch.events, hooks=self.hooks)


def may_enter(definition: JourneyDef, history: list[tuple[str, datetime]], now: datetime) -> bool:
    """The re-entry policy, given the customer's earlier runs (status, entered at)."""
    if definition.reentry == "once":
        return not history
    if any(status in LIVE_RUN for status, _ in history):
        return False
    if definition.reentry == "cooldown":
        assert definition.cooldown is not None
        return all(entered <= now - definition.cooldown for _, entered in history)
    return True


async def live_profiles(
    session: AsyncSession, ids: set[str], keep: list[Any]
) -> dict[str, str | None]:
    """Where each (possibly merged) profile id lives now; ``None`` if erased or unknown."""
    out: dict[str, str | None] = dict.fromkeys(ids)
    found = (await session.execute(select(Profile).where(Profile.id.in_(ids)))).scalars().all()
    keep.extend(found)  # in the identity map for what the new runs do next
    for profile in found:
        if profile.erased_at is not None:
            continue
        merged_into = profile.merged_into
        out[profile.id] = profile.id if merged_into is None else await _follow(session, merged_into)
    return out


async def _follow(session: AsyncSession, profile_id: str) -> str | None:
    seen: set[str] = set()
    current: str | None = profile_id
    while current is not None and current not in seen:
        seen.add(current)
        row = (
            await session.execute(
                select(Profile.merged_into, Profile.erased_at).where(Profile.id == current)
            )
        ).one_or_none()
        if row is None or row.erased_at is not None:
            return None
        if row.merged_into is None:
            return current
        current = row.merged_into
    return None
