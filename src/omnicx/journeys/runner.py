"""Advancing one run: execute nodes until it waits or ends, collecting what to write.

Nothing here writes steps, timers or timeline events directly: they go into the
:class:`Batch`, which the engine writes in a few bulk statements for every run the batch
advanced. What must happen in order (a send's delivery-log row, a branch's query, a trait
update) is done at once, in the same transaction. Sends wait for the batch's others and are
submitted together (:meth:`Runner.send_pending`); each run then goes on past its send.

A send's idempotency key is ``journey:{run}:{node}:{visit}``: the run's committed state fully
decides which node runs at which visit, so re-running a wake-up after a crash makes the same
key, and messaging returns the message it already has instead of sending again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics.experiments import EXPOSURE_EVENT
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
from omnicx.journeys.models import JourneyRun
from omnicx.journeys.projector import RUN, run_key
from omnicx.journeys.traits import set_traits
from omnicx.messaging.batch import submit_many
from omnicx.messaging.policies import zone_of
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.service import SendRequest, Submitted
from omnicx.profiles.internal import InternalEvent
from omnicx.profiles.models import Profile
from omnicx.segments.engine import Loaded, evaluate
from omnicx.segments.language import dependencies
from omnicx.settings import Settings

LIVE_RUN = ("active", "waiting")
HOLDOUT = "holdout"


def bucket(*parts: str) -> float:
    """A stable number in [0, 100) for a customer at a split."""
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass
class Batch:
    """Everything a batch of wake-ups decided to write, written together at the end."""

    now: datetime
    names: dict[str, str] = field(default_factory=dict)  # journey id → name, for events
    steps: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancels: set[str] = field(default_factory=set)
    events: list[InternalEvent] = field(default_factory=list)
    keep: list[Any] = field(default_factory=list)  # rows held in the session's identity map
    sends: list[tuple[JourneyRun, Send, JourneyDef]] = field(default_factory=list)  # to submit
    executed: dict[int, int] = field(default_factory=dict)  # run → nodes run in this batch

    def schedule(self, kind: str, key: str, due_at: datetime, payload: dict[str, Any]) -> None:
        self.schedules[key] = {
            "kind": kind,
            "key": key,
            "due_at": due_at,
            "payload": {**payload, "key": key},
            "attempts": 0,
        }
        self.cancels.discard(key)

    def cancel(self, key: str) -> None:
        self.schedules.pop(key, None)
        self.cancels.add(key)

    def step(
        self, run: JourneyRun, node: str, kind: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        self.steps[(run.id, run.visit)] = {
            "run_id": run.id,
            "journey_id": run.journey_id,
            "version": run.version,
            "node": node,
            "visit": run.visit,
            "kind": kind,
            "outcome": outcome,
            "detail": detail,
            "at": self.now,
        }

    def resolve(self, run: JourneyRun, outcome: str, detail: dict[str, Any]) -> None:
        """The wait step of the run's current visit is over (recorded now or earlier)."""
        pending = self.steps.get((run.id, run.visit))
        if pending is not None:
            pending.update(outcome=outcome, detail={**pending["detail"], **detail})
        else:
            self.resolved.append(
                {"r": run.id, "v": run.visit, "outcome": outcome, "detail": detail}
            )

    def event(self, run: JourneyRun, name: str, suffix: str, **properties: Any) -> None:
        self.events.append(
            InternalEvent(
                profile_id=run.profile_id,
                event=name,
                message_id=f"journey:{run.id}:{suffix}",
                timestamp=self.now,
                properties={
                    "journey_id": run.journey_id,
                    "journey_name": self.names.get(run.journey_id, run.journey_id),
                    "version": run.version,
                    "run_id": run.id,
                    "variant": run.variant,
                    **properties,
                },
            )
        )

    def finish(self, run: JourneyRun, status: str, reason: str, **properties: Any) -> None:
        run.status, run.finished_at, run.exit_reason = status, self.now, reason
        run.waiting_event = run.waiting_match = run.wait_until = None
        if status == "converted":
            self.event(run, "Journey Converted", "converted", node=run.node, **properties)
        else:
            self.event(run, "Journey Exited", "exited", node=run.node, reason=reason, **properties)


class Runner:
    def __init__(self, settings: Settings, hooks: Hooks, definitions: Definitions) -> None:
        self.settings = settings
        self.hooks = hooks
        self.definitions = definitions
        self.available = configured(settings)
        self.max_steps = settings.journey_max_steps

    async def advance(
        self,
        session: AsyncSession,
        batch: Batch,
        run: JourneyRun,
        definition: JourneyDef,
        resume: dict[str, Any] | None,
    ) -> None:
        """Go on from ``run.node``: first past its wait when ``resume`` says it is over."""
        node_id: str | None = run.node
        if resume is not None:
            node = definition.nodes.get(run.node)
            if node is None:
                raise KeyError(f"run {run.id} is at {run.node!r}, not in version {run.version}")
            holdout = isinstance(node, Split) and run.variant == HOLDOUT
            if isinstance(node, Wait | WaitForEvent) or holdout:
                node_id = self._resolve_wait(batch, run, node, resume)
                if run.status not in LIVE_RUN:
                    return
            run.status = "active"
            run.waiting_event = run.waiting_match = run.wait_until = None
        await self._go(session, batch, run, definition, node_id)

    async def _go(
        self,
        session: AsyncSession,
        batch: Batch,
        run: JourneyRun,
        definition: JourneyDef,
        node_id: str | None,
    ) -> None:
        """Execute from ``node_id`` until the run waits, ends, or reaches a send (which
        :meth:`send_pending` submits with the batch's others, then goes on from)."""
        while True:
            if node_id is None:
                batch.finish(run, "completed", "completed")
                return
            count = batch.executed[run.id] = batch.executed.get(run.id, 0) + 1
            if count > self.max_steps:
                raise RuntimeError(f"run {run.id} executed {self.max_steps} nodes without waiting")
            node = definition.nodes[node_id]
            run.node = node_id
            run.visit += 1
            if isinstance(node, Send):
                batch.sends.append((run, node, definition))
                return
            waiting, node_id = await self._execute(session, batch, run, definition, node)
            if waiting or run.status not in LIVE_RUN:
                return

    async def send_pending(self, session: AsyncSession, batch: Batch) -> None:
        """Submit the batch's sends together (:func:`omnicx.messaging.batch.submit_many`) and
        go on past each; runs that reach further sends make the next round."""
        while batch.sends:
            pending, batch.sends = batch.sends, []
            requests = [self._request(run, node) for run, node, _ in pending]
            results = await submit_many(
                session,
                self.settings,
                self.hooks,
                requests=requests,
                available=self.available,
                now=batch.now,
            )
            for (run, node, definition), result in zip(pending, results, strict=True):
                outcome, detail = _sent(result)
                self._record(batch, run, node, outcome, detail)
                await self._go(session, batch, run, definition, node.next)

    def _resolve_wait(
        self, batch: Batch, run: JourneyRun, node: Step, resume: dict[str, Any]
    ) -> str | None:
        detail: dict[str, Any] = {"resolved_at": batch.now.isoformat()}
        if run.wait_until is not None:
            detail["until"] = run.wait_until.isoformat()
        nxt: str | None
        if isinstance(node, WaitForEvent):
            if resume.get("wake") == "event":
                outcome, nxt = "event", node.next
                detail["event_message_id"] = resume["event"]["message_id"]
            else:
                outcome, nxt = "timeout", node.timeout_next
        elif isinstance(node, Split):  # a holdout's wait for the goal window to close
            outcome, nxt = HOLDOUT, None
        else:
            outcome, nxt = "elapsed", node.next
        batch.resolve(run, outcome, detail)
        batch.event(run, "Journey Step", f"{run.visit}:resolved", node=node.id, outcome=outcome)
        if isinstance(node, Split):
            batch.finish(run, "completed", HOLDOUT)
        return nxt

    async def _execute(
        self,
        session: AsyncSession,
        batch: Batch,
        run: JourneyRun,
        definition: JourneyDef,
        node: Step,
    ) -> tuple[bool, str | None]:
        """Run one node; whether the run now waits, and the node after it."""
        now = batch.now
        detail: dict[str, Any] = {}
        nxt: str | None = node.next
        waiting = False
        if isinstance(node, Wait):
            traits: dict[str, Any] = {}
            if node.window is not None or node.until is not None:  # local time: the timezone
                profile = await session.get(Profile, run.profile_id)
                traits = profile.traits if profile is not None else {}
            zone = zone_of(traits, self.settings.messaging_default_timezone)
            until, note = timing.wait_end(node, now, traits=traits, context=run.context, zone=zone)
            if until > now:
                self._wait(batch, run, until)
                outcome, detail, waiting = "waiting", {"until": until.isoformat()}, True
            else:
                outcome, detail = "elapsed", {"note": note} if note else {}
        elif isinstance(node, WaitForEvent):
            until = now + node.timeout
            self._wait(batch, run, until)
            run.waiting_event = node.spec.event
            run.waiting_match = expected(node.spec, run.context)
            outcome, waiting = "waiting", True
            detail = {"event": node.spec.event, "until": until.isoformat()}
        elif isinstance(node, Branch):
            outcome, nxt = await self._branch(session, run, node, now)
        elif isinstance(node, Split):
            outcome, nxt, waiting = self._split(batch, run, definition, node)
        elif isinstance(node, UpdateTraits):
            changed = await set_traits(
                session, profile_id=run.profile_id, values=node.set, at=now, hooks=self.hooks
            )
            outcome, detail = "updated", {"changed": changed}
        else:
            assert isinstance(node, Exit)
            outcome = "exit"
        self._record(batch, run, node, outcome, detail)
        if isinstance(node, Exit):
            batch.finish(run, "completed", "exit node")
        return waiting, nxt

    def _record(
        self, batch: Batch, run: JourneyRun, node: Step, outcome: str, detail: dict[str, Any]
    ) -> None:
        batch.step(run, node.id, node.kind, outcome, detail)
        batch.event(
            run, "Journey Step", str(run.visit), node=node.id, kind=node.kind, outcome=outcome
        )

    def _wait(self, batch: Batch, run: JourneyRun, until: datetime) -> None:
        run.status, run.wait_until = "waiting", until
        payload = {"run": run.id, "visit": run.visit, "wake": "timer"}
        batch.schedule(RUN, run_key(run.id), until, payload)

    def _request(self, run: JourneyRun, node: Send) -> SendRequest:
        return SendRequest(
            to=run.profile_id,
            message=node.message,
            channel=node.channel if isinstance(node.channel, str) else list(node.channel),
            data=node.data,
            event=run.context,
            idempotency_key=f"journey:{run.id}:{node.id}:{run.visit}",
        )

    async def _branch(
        self, session: AsyncSession, run: JourneyRun, node: Branch, now: datetime
    ) -> tuple[str, str | None]:
        def condition_id(arm_name: str) -> str:
            return f"{run.journey_id}:{node.id}:{arm_name}"

        conditions = [
            Loaded(condition_id(arm.name), arm.name, arm.when, dependencies(arm.when))
            for arm in node.arms
            if arm.when is not None
        ]
        answers = await evaluate(session, conditions, run.profile_id, now) if conditions else {}
        for arm in node.arms:
            if not all_hold(arm.context, run.context):
                continue
            if arm.when is None or answers.get(condition_id(arm.name), False):
                return arm.name, arm.next
        return "default", node.default

    def _split(
        self, batch: Batch, run: JourneyRun, definition: JourneyDef, node: Split
    ) -> tuple[str, str | None, bool]:
        point = bucket(run.journey_id, node.id, run.profile_id)
        if point < node.holdout:
            run.variant = HOLDOUT
            self._exposure(batch, run, node, HOLDOUT)
            goal = definition.goal
            if goal is not None and goal.within is not None:
                # Held-out customers stay (receiving nothing) until the goal window closes, so
                # their conversions are counted against the variants'.
                until = run.entered_at + goal.within
                if until > batch.now:
                    self._wait(batch, run, until)
                    return HOLDOUT, None, True
            return HOLDOUT, None, False
        total = sum(v.weight for v in node.variants)
        scaled = (point - node.holdout) / (100 - node.holdout) * total
        chosen = node.variants[-1]
        for variant in node.variants:
            if scaled < variant.weight:
                chosen = variant
                break
            scaled -= variant.weight
        run.variant = chosen.name
        self._exposure(batch, run, node, chosen.name)
        return chosen.name, chosen.next, False

    def _exposure(self, batch: Batch, run: JourneyRun, node: Split, variation: str) -> None:
        """``Experiment Viewed`` for the arm given (holdout too), so the split reads as an
        experiment in analytics: ``/api/analytics/experiments/{journey}:{node}``."""
        batch.event(
            run,
            EXPOSURE_EVENT,
            f"{run.visit}:exposure",
            experiment_id=experiment_id(run.journey_id, node.id),
            experiment_name=f"{batch.names.get(run.journey_id, run.journey_id)}: {node.id}",
            variation_id=variation,
            node=node.id,
        )


def experiment_id(journey_id: str, node_id: str) -> str:
    """The experiment a split is, in analytics: the journey's id and the split node's."""
    return f"{journey_id}:{node_id}"


def _sent(result: Submitted | ApiError) -> tuple[str, dict[str, Any]]:
    """A send step's outcome: the message's status, or why there is none (a template deleted
    after publishing: the customer moves on)."""
    if isinstance(result, ApiError):
        return "failed", {"error": result.code, "reason": result.message}
    message = result.message
    return message.status, {
        "message_id": message.id,
        "channel": message.channel,
        "reason": message.reason or message.choice_reason,
    }
