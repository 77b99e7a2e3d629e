"""Journeys: drafts, publishing versions (and migrating runs), pause, resume, stop, delete.

A journey is edited as a draft (``journeys.definition``); :func:`publish` freezes the draft as
the next version and makes it the one new customers enter. Customers in flight stay on their
version unless the publisher maps nodes (``{"old": "new"}``): runs waiting at a mapped node move
to the new version at the mapped node, keeping their pending wake-up (a run waiting an hour at
``wait`` mapped to ``wait-longer`` still wakes when its hour is up, then follows the new
version from there).

Lifecycle: draft → live ⇄ paused → stopped. Publishing a draft or a stopped journey makes it
live; publishing a paused one keeps it paused (resume it when the fix is in). Stopping exits every
run at once and cancels their timers. Only drafts and stopped journeys may be deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.journeys import catalog, schedule
from omnicx.journeys.definition import (
    JourneyDef,
    JourneyDefinitionError,
    WaitForEvent,
    parse,
)
from omnicx.journeys.matching import expected
from omnicx.journeys.models import Journey, JourneyRun, JourneyStep, JourneyVersion
from omnicx.journeys.projector import goal_key, run_key
from omnicx.journeys.schemas import (
    JourneyCreate,
    JourneyRead,
    JourneySummary,
    JourneyWrite,
    VersionRead,
)
from omnicx.messaging import service as messaging
from omnicx.profiles.internal import InternalEvent, record_internal_many
from omnicx.segments import service as segments
from omnicx.segments.language import dependencies

LIVE_RUN = ("active", "waiting")
CHUNK = 500


def check(definition: dict[str, Any]) -> JourneyDef:
    """Parse or answer 422 with the path of the offending part."""
    try:
        return parse(definition)
    except JourneyDefinitionError as exc:
        raise ApiError(422, "invalid_definition", str(exc), path=exc.path) from exc


async def check_references(session: AsyncSession, parsed: JourneyDef) -> None:
    """Templates and segments a definition names must exist when it is published."""
    missing = [
        t for t in sorted(parsed.templates()) if await messaging.get_template(session, t) is None
    ]
    if missing:
        raise ApiError(422, "unknown_template", f"no message template(s) {missing}")
    wanted: set[str] = set()
    for node in parsed.nodes.values():
        for arm in getattr(node, "arms", ()):
            if arm.when is not None:
                wanted |= dependencies(arm.when).segments
    for flt in parsed.entry.where:
        if parsed.entry.event.startswith("Segment ") and flt.key == "segment_id":
            wanted.add(str(flt.compare.value))
    unknown = [s for s in sorted(wanted) if await segments.get(session, segment_id=s) is None]
    if unknown:
        raise ApiError(422, "unknown_segment", f"no segment(s) {unknown}")


async def get(session: AsyncSession, *, journey_id: str) -> Journey | None:
    return await session.get(Journey, journey_id)


async def get_or_404(session: AsyncSession, journey_id: str) -> Journey:
    journey = await get(session, journey_id=journey_id)
    if journey is None:
        raise ApiError(404, "journey_not_found", f"no journey {journey_id!r}")
    return journey


async def read(session: AsyncSession, *, journey: Journey) -> JourneyRead:
    versions = (
        await session.execute(
            select(JourneyVersion)
            .where(JourneyVersion.journey_id == journey.id)
            .order_by(JourneyVersion.version)
        )
    ).scalars()
    return JourneyRead(
        id=journey.id,
        name=journey.name,
        description=journey.description,
        status=journey.status,
        live_version=journey.live_version,
        definition=journey.definition,
        versions=[
            VersionRead(
                version=v.version,
                published_at=v.published_at,
                published_by=v.published_by,
                migrated=v.migrated,
            )
            for v in versions
        ],
        created_at=journey.created_at,
        updated_at=journey.updated_at,
    )


async def list_all(session: AsyncSession) -> list[JourneySummary]:
    counts: dict[str, tuple[int, int]] = {}
    rows = await session.execute(
        select(JourneyRun.journey_id, JourneyRun.status, func.count()).group_by(
            JourneyRun.journey_id, JourneyRun.status
        )
    )
    for journey_id, status, n in rows:
        active, entered = counts.get(journey_id, (0, 0))
        counts[journey_id] = (active + (n if status in LIVE_RUN else 0), entered + n)
    journeys = (await session.execute(select(Journey).order_by(Journey.id))).scalars()
    return [
        JourneySummary(
            id=j.id,
            name=j.name,
            status=j.status,
            live_version=j.live_version,
            active=counts.get(j.id, (0, 0))[0],
            entered=counts.get(j.id, (0, 0))[1],
        )
        for j in journeys
    ]


async def create(session: AsyncSession, *, data: JourneyCreate, now: datetime) -> Journey:
    check(data.definition)
    if await get(session, journey_id=data.id) is not None:
        raise ApiError(409, "journey_exists", f"journey {data.id!r} already exists")
    journey = Journey(
        id=data.id,
        name=data.name,
        description=data.description,
        status="draft",
        definition=data.definition,
        live_version=None,
        created_at=now,
        updated_at=now,
    )
    session.add(journey)
    await session.flush()
    return journey


async def update_draft(
    session: AsyncSession, *, journey: Journey, data: JourneyWrite, now: datetime
) -> Journey:
    """Change the name, description and draft; live customers see nothing until publish."""
    check(data.definition)
    journey.name, journey.description = data.name, data.description
    journey.definition, journey.updated_at = data.definition, now
    await session.flush()
    return journey


async def publish(
    session: AsyncSession,
    *,
    journey: Journey,
    migrate: dict[str, str],
    by: str,
    now: datetime,
) -> tuple[int, int]:
    """Freeze the draft as a new version and make it live; returns (version, runs migrated)."""
    parsed = check(journey.definition)
    await check_references(session, parsed)
    old_nodes = await _nodes_of_versions(session, journey.id)
    for old, new in migrate.items():
        if old not in old_nodes:
            raise ApiError(
                422, "invalid_migration", f"migrate: no node {old!r} in earlier versions"
            )
        if new not in parsed.nodes:
            raise ApiError(422, "invalid_migration", f"migrate: no node {new!r} in the new version")
    latest = (
        await session.execute(
            select(func.max(JourneyVersion.version)).where(JourneyVersion.journey_id == journey.id)
        )
    ).scalar_one()
    version = (latest or 0) + 1
    session.add(
        JourneyVersion(
            journey_id=journey.id,
            version=version,
            definition=journey.definition,
            published_at=now,
            published_by=by,
            migrated=dict(migrate),
        )
    )
    journey.live_version, journey.updated_at = version, now
    if journey.status in ("draft", "stopped"):
        journey.status = "live"
    await session.flush()
    moved = await _migrate_runs(session, journey.id, version, parsed, migrate) if migrate else 0
    if parsed.entry.schedule is not None:
        await schedule.start(session, journey_id=journey.id, now=now)
    catalog.changed()
    return version, moved


async def _nodes_of_versions(session: AsyncSession, journey_id: str) -> set[str]:
    nodes: set[str] = set()
    for (definition,) in await session.execute(
        select(JourneyVersion.definition).where(JourneyVersion.journey_id == journey_id)
    ):
        nodes |= {str(n.get("id")) for n in definition.get("nodes", []) if isinstance(n, dict)}
    return nodes


async def _migrate_runs(
    session: AsyncSession,
    journey_id: str,
    version: int,
    parsed: JourneyDef,
    migrate: dict[str, str],
) -> int:
    runs = (
        await session.execute(
            select(JourneyRun)
            .where(
                JourneyRun.journey_id == journey_id,
                JourneyRun.version < version,
                JourneyRun.status == "waiting",
                JourneyRun.node.in_(list(migrate)),
            )
            .with_for_update()
        )
    ).scalars()
    moved = 0
    for run in runs:
        target = parsed.nodes[migrate[run.node]]
        run.version, run.node = version, target.id
        if isinstance(target, WaitForEvent):
            run.waiting_event = target.spec.event
            run.waiting_match = expected(target.spec, run.context)
        else:
            run.waiting_event = run.waiting_match = None
        moved += 1
    await session.flush()
    return moved


async def set_status(session: AsyncSession, *, journey: Journey, to: str, now: datetime) -> None:
    allowed = {"paused": ("live",), "live": ("paused",)}
    if journey.status not in allowed[to]:
        verb = "pause" if to == "paused" else "resume"
        raise ApiError(409, "invalid_status", f"cannot {verb} a journey that is {journey.status}")
    journey.status, journey.updated_at = to, now
    await session.flush()
    catalog.changed()


async def stop(session: AsyncSession, *, journey: Journey, hooks: Hooks, now: datetime) -> int:
    """Stop the journey and exit every run in it; returns how many runs were exited."""
    if journey.status not in ("live", "paused"):
        raise ApiError(409, "invalid_status", f"cannot stop a journey that is {journey.status}")
    journey.status, journey.updated_at = "stopped", now
    exited = 0
    while True:
        runs = (
            await session.execute(
                select(JourneyRun.id, JourneyRun.profile_id, JourneyRun.version, JourneyRun.node)
                .where(JourneyRun.journey_id == journey.id, JourneyRun.status.in_(LIVE_RUN))
                .limit(CHUNK)
            )
        ).all()
        if not runs:
            break
        ids = [r.id for r in runs]
        await session.execute(
            update(JourneyRun)
            .where(JourneyRun.id.in_(ids))
            .values(
                status="exited",
                finished_at=now,
                exit_reason="journey stopped",
                waiting_event=None,
                waiting_match=None,
                wait_until=None,
            )
        )
        keys = [run_key(i) for i in ids] + [goal_key(i) for i in ids]
        await session.execute(delete(timers.Timer).where(timers.Timer.key.in_(keys)))
        await record_internal_many(
            session,
            [
                InternalEvent(
                    profile_id=r.profile_id,
                    event="Journey Exited",
                    message_id=f"journey:{r.id}:exited",
                    timestamp=now,
                    properties={
                        "journey_id": journey.id,
                        "journey_name": journey.name,
                        "version": r.version,
                        "run_id": r.id,
                        "node": r.node,
                        "reason": "journey stopped",
                    },
                )
                for r in runs
            ],
            hooks=hooks,
        )
        exited += len(runs)
    await session.flush()
    catalog.changed()
    return exited


async def remove(session: AsyncSession, *, journey: Journey) -> None:
    if journey.status not in ("draft", "stopped"):
        raise ApiError(
            409, "journey_in_use", f"stop the journey before deleting it (it is {journey.status})"
        )
    run_ids = select(JourneyRun.id).where(JourneyRun.journey_id == journey.id)
    await session.execute(delete(JourneyStep).where(JourneyStep.run_id.in_(run_ids)))
    await session.execute(delete(JourneyRun).where(JourneyRun.journey_id == journey.id))
    await session.execute(delete(JourneyVersion).where(JourneyVersion.journey_id == journey.id))
    await session.delete(journey)
    await session.flush()
    catalog.changed()


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    """Runs follow the person; the entry key is re-derived so the survivor's keys never clash."""
    runs = (
        await session.execute(select(JourneyRun).where(JourneyRun.profile_id == from_))
    ).scalars()
    for run in runs:
        run.profile_id = into
        run.entry_key = _rekey(run.entry_key, from_)
    await session.flush()


def _rekey(key: str, from_: str) -> str:
    from omnicx.journeys.projector import digest

    return digest(key, "merged-from", from_)


async def on_erase(session: AsyncSession, profile_ids: Any) -> None:
    """Runs hold the trigger's properties: they go, with their steps and timers."""
    ids = list(profile_ids)
    run_ids = list(
        (
            await session.execute(select(JourneyRun.id).where(JourneyRun.profile_id.in_(ids)))
        ).scalars()
    )
    for start in range(0, len(run_ids), CHUNK):
        part = run_ids[start : start + CHUNK]
        keys = [run_key(i) for i in part] + [goal_key(i) for i in part]
        await session.execute(delete(timers.Timer).where(timers.Timer.key.in_(keys)))
        await session.execute(delete(JourneyStep).where(JourneyStep.run_id.in_(part)))
        await session.execute(delete(JourneyRun).where(JourneyRun.id.in_(part)))
