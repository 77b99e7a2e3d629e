"""What journeys did: counts per journey, version, variant and node; one customer's runs.

Counts come from the run and step rows with a few grouped queries (no counters to drift):
a node's *executed* and *outcomes* count its steps (a branch's outcomes are its arms, a split's
its variants), *waiting* is runs waiting there now, *exited* and *converted* are runs that
finished there, and *converted_by_outcome* counts runs that took each outcome at the node and
converted afterwards (how each arm and variant converts).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.journeys.models import Journey, JourneyRun, JourneyStep
from omnicx.journeys.schemas import GroupStats, JourneyStats, NodeStats, RunRead, StepRead

LIVE_RUN = ("active", "waiting")


def _add(group: GroupStats, status: str, n: int) -> None:
    group.entered += n
    if status in LIVE_RUN:
        group.active += n
    elif status in ("completed", "exited", "converted"):
        setattr(group, status, getattr(group, status) + n)


async def journey_stats(session: AsyncSession, *, journey_id: str) -> JourneyStats:
    out = JourneyStats(
        journey_id=journey_id, totals=GroupStats(), versions={}, variants={}, nodes={}
    )
    rows = await session.execute(
        select(JourneyRun.version, JourneyRun.variant, JourneyRun.status, func.count())
        .where(JourneyRun.journey_id == journey_id)
        .group_by(JourneyRun.version, JourneyRun.variant, JourneyRun.status)
    )
    for version, variant, status, n in rows:
        _add(out.totals, status, n)
        _add(out.versions.setdefault(str(version), GroupStats()), status, n)
        if variant is not None:
            _add(out.variants.setdefault(variant, GroupStats()), status, n)

    def node(node_id: str, kind: str = "") -> NodeStats:
        found = out.nodes.get(node_id)
        if found is None:
            found = out.nodes[node_id] = NodeStats(
                kind=kind,
                executed=0,
                waiting=0,
                exited=0,
                converted=0,
                outcomes={},
                converted_by_outcome={},
            )
        if kind and not found.kind:
            found.kind = kind
        return found

    steps = await session.execute(
        select(JourneyStep.node, JourneyStep.kind, JourneyStep.outcome, func.count())
        .where(JourneyStep.journey_id == journey_id, JourneyStep.node.not_like("$%"))
        .group_by(JourneyStep.node, JourneyStep.kind, JourneyStep.outcome)
    )
    for node_id, kind, outcome, n in steps:
        stats = node(node_id, kind)
        stats.executed += n
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + n
    where_now = await session.execute(
        select(JourneyRun.node, JourneyRun.status, func.count())
        .where(JourneyRun.journey_id == journey_id)
        .group_by(JourneyRun.node, JourneyRun.status)
    )
    for node_id, status, n in where_now:
        stats = node(node_id)
        if status == "waiting":
            stats.waiting += n
        elif status == "converted":
            stats.converted += n
        elif status in ("completed", "exited"):
            stats.exited += n
    converted = await session.execute(
        select(JourneyStep.node, JourneyStep.outcome, func.count(func.distinct(JourneyStep.run_id)))
        .join(JourneyRun, JourneyRun.id == JourneyStep.run_id)
        .where(
            JourneyStep.journey_id == journey_id,
            JourneyStep.node.not_like("$%"),
            JourneyRun.status == "converted",
        )
        .group_by(JourneyStep.node, JourneyStep.outcome)
    )
    for node_id, outcome, n in converted:
        node(node_id).converted_by_outcome[outcome] = n
    return out


async def profile_runs(
    session: AsyncSession, *, profile_id: str, limit: int = 100
) -> list[RunRead]:
    runs = list(
        (
            await session.execute(
                select(JourneyRun)
                .where(JourneyRun.profile_id == profile_id)
                .order_by(JourneyRun.entered_at.desc(), JourneyRun.id.desc())
                .limit(limit)
            )
        ).scalars()
    )
    if not runs:
        return []
    query = select(Journey.id, Journey.name).where(Journey.id.in_({r.journey_id for r in runs}))
    names: dict[str, str] = {row.id: row.name for row in await session.execute(query)}
    steps: dict[int, list[StepRead]] = {}
    for step in (
        await session.execute(
            select(JourneyStep)
            .where(JourneyStep.run_id.in_([r.id for r in runs]))
            .order_by(JourneyStep.run_id, JourneyStep.visit)
        )
    ).scalars():
        steps.setdefault(step.run_id, []).append(
            StepRead(
                node=step.node,
                kind=step.kind,
                visit=step.visit,
                outcome=step.outcome,
                detail=step.detail,
                at=step.at,
            )
        )
    return [
        RunRead(
            id=r.id,
            journey_id=r.journey_id,
            journey_name=names.get(r.journey_id, r.journey_id),
            version=r.version,
            status=r.status,
            node=r.node,
            variant=r.variant,
            waiting_for=r.waiting_event,
            wait_until=r.wait_until,
            entered_at=r.entered_at,
            finished_at=r.finished_at,
            exit_reason=r.exit_reason,
            steps=steps.get(r.id, []),
        )
        for r in runs
    ]
