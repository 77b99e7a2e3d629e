"""The engine: timer handlers that enter customers, advance their runs and take them out.

Three timer kinds, each run by any worker inside one transaction with the timer's removal:

- ``journey.enter``: a matching event happened. Under a per-(journey, customer) lock (an
  advisory lock on PostgreSQL; SQLite has one writer) the re-entry policy is checked and the run
  row inserted (its entry key unique), then advanced.
- ``journey.run:{run}``: the run's one pending wake-up: a wait elapsed, an awaited event came
  (the projector moved the timer to now), or a timeout. The payload names the ``visit`` it was
  set for; a run that has moved on since ignores it.
- ``journey.goal:{run}``: the goal event came: the run is converted and its wake-up cancelled,
  wherever it was.

Advancing executes nodes until the run waits or ends. Each executed node is a ``journey_steps``
row unique on ``(run, node, visit)``; a send's idempotency key is ``journey:{run}:{node}:{visit}``,
so if a worker dies mid-way the whole wake-up is re-run from the same committed state and makes
the same, single, message. The run row is locked (``FOR UPDATE``) while it advances, so a goal
and a wake-up handled by two workers at once are applied one after the other.

While a journey is paused its timers, when they come due, move themselves
``OMNICX_JOURNEY_HOLD_SECONDS`` later without acting; goals still convert (taking a customer out
sends nothing). Timeline events: ``Journey Entered``, ``Journey Step`` (one per executed node),
``Journey Converted`` and ``Journey Exited`` (with the reason: completed, exit node, stopped).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.journeys import timing
from omnicx.journeys.catalog import Definitions
from omnicx.journeys.definition import (
    Branch,
    Exit,
    JourneyDef,
    Send,
    Split,
    Step,
    UpdateTraits,
    Wait,
    WaitForEvent,
)
from omnicx.journeys.matching import all_hold, expected
from omnicx.journeys.models import Journey, JourneyRun, JourneyStep
from omnicx.journeys.projector import ENTER, GOAL, RUN, run_key
from omnicx.journeys.traits import set_traits
from omnicx.messaging.policies import zone_of
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.service import SendRequest, submit
from omnicx.profiles.models import Profile
from omnicx.profiles.record import InternalEvent, record_internal_many
from omnicx.segments.engine import Loaded, evaluate
from omnicx.segments.language import dependencies
from omnicx.settings import Settings

LIVE_RUN = ("active", "waiting")
HOLDOUT = "holdout"


class StepConflict(RuntimeError):
    """A step was already recorded: another worker advanced this run; this wake-up is stale."""


def bucket(*parts: str) -> float:
    """A stable number in [0, 100) for a customer at a split."""
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def lock_key(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big", signed=True)


@dataclass
class Advance:
    """What one wake-up did: step rows and timeline events, written together at the end."""

    run: JourneyRun
    journey: Journey
    now: datetime
    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[InternalEvent] = field(default_factory=list)

    def event(self, name: str, suffix: str, **properties: Any) -> None:
        run = self.run
        self.events.append(
            InternalEvent(
                profile_id=run.profile_id,
                event=name,
                message_id=f"journey:{run.id}:{suffix}",
                timestamp=self.now,
                properties={
                    "journey_id": run.journey_id,
                    "journey_name": self.journey.name,
                    "version": run.version,
                    "run_id": run.id,
                    "variant": run.variant,
                    **properties,
                },
            )
        )


class Engine:
    def __init__(self, settings: Settings, hooks: Hooks, definitions: Definitions) -> None:
        self.settings = settings
        self.hooks = hooks
        self.definitions = definitions
        self.available = configured(settings)
        self.hold = timedelta(seconds=settings.journey_hold_seconds)
        self.max_steps = settings.journey_max_steps

    def register(self) -> None:
        self.hooks.timer(ENTER, self.enter)
        self.hooks.timer(RUN, self.wake)
        self.hooks.timer(GOAL, self.goal)

    # --- the three timer handlers -----------------------------------------------------------

    async def enter(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        journey = await session.get(Journey, payload["journey"])
        if journey is None or journey.status not in ("live", "paused"):
            return
        if journey.status == "paused":
            return await self._hold(session, ENTER, payload, now)
        assert journey.live_version is not None
        profile_id = await live_profile(session, payload["profile"])
        if profile_id is None:
            return
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"),
                {"k": lock_key("journey", journey.id, profile_id)},
            )
        definition = await self.definitions.get(session, journey.id, journey.live_version)
        if not await self._may_enter(session, journey.id, profile_id, definition, now):
            return
        stmt = (
            self._insert(session)
            .values(
                journey_id=journey.id,
                version=journey.live_version,
                profile_id=profile_id,
                entry_key=payload["entry_key"],
                status="active",
                node=definition.start,
                visit=0,
                context=payload["event"]["properties"],
                entered_at=now,
            )
            .on_conflict_do_nothing(index_elements=["journey_id", "profile_id", "entry_key"])
            .returning(JourneyRun)
        )
        run = (await session.execute(stmt)).scalar_one_or_none()
        if run is None:
            return  # this key already entered
        work = Advance(run, journey, now)
        work.event("Journey Entered", "entered", trigger=payload["event"]["name"])
        await self._advance(session, work, definition, resume=None)

    async def wake(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        run = await self._locked_run(session, payload["run"])
        if run is None or run.status not in LIVE_RUN or run.visit != payload["visit"]:
            return  # finished, or moved on since this wake-up was set
        journey = await session.get(Journey, run.journey_id)
        if journey is None or journey.status == "stopped":
            return
        if journey.status == "paused":
            return await self._hold(session, RUN, payload, now, key=run_key(run.id))
        definition = await self.definitions.get(session, run.journey_id, run.version)
        await self._advance(session, Advance(run, journey, now), definition, resume=payload)

    async def goal(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        run = await self._locked_run(session, payload["run"])
        if run is None or run.status not in LIVE_RUN:
            return
        journey = await session.get(Journey, run.journey_id)
        if journey is None:
            return
        work = Advance(run, journey, now)
        event = payload["event"]
        run.visit += 1
        work.steps.append(
            self._step(run, "$goal", "goal", "converted", {"event": event["name"]}, now)
        )
        self._finish(run, "converted", now)
        await timers.cancel(session, key=run_key(run.id))
        work.event(
            "Journey Converted",
            "converted",
            node=run.node,
            goal_event=event["name"],
            goal_message_id=event["message_id"],
        )
        await self._write(session, work)

    # --- advancing -------------------------------------------------------------------------

    async def _advance(
        self,
        session: AsyncSession,
        work: Advance,
        definition: JourneyDef,
        resume: dict[str, Any] | None,
    ) -> None:
        run = work.run
        node_id: str | None = run.node
        if resume is not None:
            node = definition.nodes.get(run.node)
            if node is None:
                raise KeyError(f"run {run.id} is at {run.node!r}, not in version {run.version}")
            holdout = isinstance(node, Split) and run.variant == HOLDOUT
            if isinstance(node, Wait | WaitForEvent) or holdout:
                node_id = await self._resolve_wait(session, work, node, resume)
                if node_id is None and run.status not in LIVE_RUN:
                    return await self._write(session, work)
            run.status = "active"
            run.waiting_event = run.waiting_match = run.wait_until = None
        for _ in range(self.max_steps):
            if node_id is None:
                self._end(work, "completed", "completed")
                break
            node = definition.nodes[node_id]
            run.node = node_id
            run.visit += 1
            waiting, node_id = await self._execute(session, work, definition, node)
            if waiting or run.status not in LIVE_RUN:
                break
        else:
            raise RuntimeError(f"run {run.id} executed {self.max_steps} nodes without waiting")
        await self._write(session, work)

    async def _resolve_wait(
        self, session: AsyncSession, work: Advance, node: Step, resume: dict[str, Any]
    ) -> str | None:
        """The wait at ``node`` is over: record how, and say where the run goes next."""
        run, now = work.run, work.now
        detail: dict[str, Any] = {"resolved_at": now.isoformat()}
        if isinstance(node, WaitForEvent):
            if resume.get("wake") == "event":
                outcome, nxt = "event", node.next
                detail["event_message_id"] = resume["event"]["message_id"]
            else:
                outcome, nxt = "timeout", node.timeout_next
        elif isinstance(node, Split):  # a holdout's wait for the goal window to close
            outcome, nxt = "holdout_done", None
            self._end(work, "completed", "holdout")
        else:
            outcome, nxt = "elapsed", node.next
        await session.execute(
            update(JourneyStep)
            .where(JourneyStep.run_id == run.id, JourneyStep.visit == run.visit)
            .values(outcome=outcome, detail=detail)
        )
        work.event("Journey Step", f"{run.visit}:resolved", node=node.id, outcome=outcome)
        return nxt

    async def _execute(
        self, session: AsyncSession, work: Advance, definition: JourneyDef, node: Step
    ) -> tuple[bool, str | None]:
        """Run one node; whether the run now waits, and the node after it."""
        run, now = work.run, work.now
        detail: dict[str, Any] = {}
        nxt: str | None = node.next
        waiting = False
        if isinstance(node, Send):
            outcome, detail = await self._send(session, run, node, now)
        elif isinstance(node, Wait):
            traits: dict[str, Any] = {}
            if node.window is not None or node.until is not None:  # local time: the timezone
                profile = await session.get(Profile, run.profile_id)
                traits = profile.traits if profile is not None else {}
            zone = zone_of(traits, self.settings.messaging_default_timezone)
            until, note = timing.wait_end(node, now, traits=traits, context=run.context, zone=zone)
            if until > now:
                self._wait(run, until)
                await self._schedule(session, run, until)
                outcome, detail, waiting = "waiting", {"until": until.isoformat()}, True
            else:
                outcome, detail = "elapsed", {"note": note} if note else {}
        elif isinstance(node, WaitForEvent):
            until = now + node.timeout
            self._wait(run, until)
            run.waiting_event = node.spec.event
            run.waiting_match = expected(node.spec, run.context)
            await self._schedule(session, run, until)
            outcome, waiting = "waiting", True
            detail = {"event": node.spec.event, "until": until.isoformat()}
        elif isinstance(node, Branch):
            outcome, nxt = await self._branch(session, run, node, now)
        elif isinstance(node, Split):
            outcome, nxt, waiting = await self._split(session, run, definition, node, now)
        elif isinstance(node, UpdateTraits):
            changed = await set_traits(
                session, profile_id=run.profile_id, values=node.set, at=now, hooks=self.hooks
            )
            outcome, detail = "updated", {"changed": changed}
        else:
            assert isinstance(node, Exit)
            outcome = "exit"
        work.steps.append(self._step(run, node.id, node.kind, outcome, detail, now))
        work.event("Journey Step", str(run.visit), node=node.id, kind=node.kind, outcome=outcome)
        if isinstance(node, Exit):
            self._end(work, "completed", "exit node")
        return waiting, nxt

    async def _send(
        self, session: AsyncSession, run: JourneyRun, node: Send, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        request = SendRequest(
            to=run.profile_id,
            message=node.message,
            channel=node.channel if isinstance(node.channel, str) else list(node.channel),
            data=node.data,
            event=run.context,
            idempotency_key=f"journey:{run.id}:{node.id}:{run.visit}",
        )
        try:
            submitted = await submit(
                session,
                self.settings,
                self.hooks,
                request=request,
                available=self.available,
                now=now,
            )
        except ApiError as exc:  # a template deleted after publishing: the customer moves on
            return "failed", {"error": exc.code, "reason": exc.message}
        message = submitted.message
        return message.status, {
            "message_id": message.id,
            "channel": message.channel,
            "reason": message.reason or message.choice_reason,
        }

    async def _branch(
        self, session: AsyncSession, run: JourneyRun, node: Branch, now: datetime
    ) -> tuple[str, str | None]:
        conditions = [
            Loaded(
                f"{run.journey_id}:{node.id}:{arm.name}", arm.name, arm.when, dependencies(arm.when)
            )
            for arm in node.arms
            if arm.when is not None
        ]
        answers = await evaluate(session, conditions, run.profile_id, now) if conditions else {}
        for arm, in_context in ((a, all_hold(a.context, run.context)) for a in node.arms):
            condition_id = f"{run.journey_id}:{node.id}:{arm.name}"
            if in_context and (arm.when is None or answers.get(condition_id, False)):
                return arm.name, arm.next
        return "default", node.default

    async def _split(
        self,
        session: AsyncSession,
        run: JourneyRun,
        definition: JourneyDef,
        node: Split,
        now: datetime,
    ) -> tuple[str, str | None, bool]:
        point = bucket(run.journey_id, node.id, run.profile_id)
        if point < node.holdout:
            run.variant = HOLDOUT
            goal = definition.goal
            if goal is not None and goal.within is not None:
                # Held out customers stay (receiving nothing) until the goal window closes, so
                # their conversions are counted against the variants'.
                until = run.entered_at + goal.within
                if until > now:
                    self._wait(run, until)
                    await self._schedule(session, run, until)
                    return HOLDOUT, None, True
            return HOLDOUT, None, False
        scaled = (
            (point - node.holdout) / (100 - node.holdout) * sum(v.weight for v in node.variants)
        )
        for variant in node.variants:
            if scaled < variant.weight:
                break
            scaled -= variant.weight
        run.variant = variant.name
        return variant.name, variant.next, False

    # --- bookkeeping -----------------------------------------------------------------------

    def _wait(self, run: JourneyRun, until: datetime) -> None:
        run.status, run.wait_until = "waiting", until

    async def _schedule(self, session: AsyncSession, run: JourneyRun, due: datetime) -> None:
        await timers.schedule(
            session,
            kind=RUN,
            key=run_key(run.id),
            due_at=due,
            payload={"run": run.id, "visit": run.visit, "wake": "timer"},
        )

    def _step(
        self,
        run: JourneyRun,
        node: str,
        kind: str,
        outcome: str,
        detail: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "journey_id": run.journey_id,
            "version": run.version,
            "node": node,
            "visit": run.visit,
            "kind": kind,
            "outcome": outcome,
            "detail": detail,
            "at": now,
        }

    def _finish(
        self, run: JourneyRun, status: str, now: datetime, reason: str | None = None
    ) -> None:
        run.status, run.finished_at, run.exit_reason = status, now, reason or status
        run.waiting_event = run.waiting_match = run.wait_until = None

    def _end(self, work: Advance, status: str, reason: str) -> None:
        self._finish(work.run, status, work.now, reason)
        work.event("Journey Exited", "exited", node=work.run.node, reason=reason)

    async def _write(self, session: AsyncSession, work: Advance) -> None:
        if work.steps:
            rows = work.steps
            result = await session.execute(
                self._insert(session, JourneyStep)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["run_id", "node", "visit"])
            )
            if result.rowcount != len(rows):  # type: ignore[attr-defined]
                raise StepConflict(f"run {work.run.id}: a step was already recorded")
        await session.flush()
        await record_internal_many(session, work.events, hooks=self.hooks)

    async def _hold(
        self,
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        key: str | None = None,
    ) -> None:
        key = key or payload["key"]
        await timers.schedule(session, kind=kind, key=key, due_at=now + self.hold, payload=payload)

    async def _locked_run(self, session: AsyncSession, run_id: int) -> JourneyRun | None:
        stmt = (
            select(JourneyRun)
            .where(JourneyRun.id == run_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await session.execute(stmt)).scalar_one_or_none()

    async def _may_enter(
        self,
        session: AsyncSession,
        journey_id: str,
        profile_id: str,
        definition: JourneyDef,
        now: datetime,
    ) -> bool:
        rows = (
            await session.execute(
                select(JourneyRun.status, JourneyRun.entered_at).where(
                    JourneyRun.journey_id == journey_id, JourneyRun.profile_id == profile_id
                )
            )
        ).all()
        if definition.reentry == "once":
            return not rows
        if any(r.status in LIVE_RUN for r in rows):
            return False
        if definition.reentry == "cooldown":
            assert definition.cooldown is not None
            return all(r.entered_at <= now - definition.cooldown for r in rows)
        return True

    @staticmethod
    def _insert(session: AsyncSession, model: type[Any] = JourneyRun) -> Any:
        from omnicx.db import dialect_insert

        return dialect_insert(session, model)


async def live_profile(session: AsyncSession, profile_id: str) -> str | None:
    """The profile a (possibly merged) id now lives in; ``None`` if erased or unknown."""
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
