"""Segment definitions: create, change, delete, preview, and read members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.db import utcnow
from omnicx.errors import ApiError
from omnicx.segments.engine import RECOMPUTE_TIMER, Loaded, count_by_query, order
from omnicx.segments.language import DefinitionError, Node, dependencies, parse
from omnicx.segments.models import Segment, SegmentMembership
from omnicx.segments.schemas import (
    MemberPage,
    PreviewResult,
    ProfileSegment,
    SegmentCreate,
    SegmentRead,
    SegmentWrite,
)


def check(definition: dict[str, Any]) -> Node:
    """Parse or answer 422 with the path of the offending part."""
    try:
        return parse(definition)
    except DefinitionError as exc:
        raise ApiError(422, "invalid_definition", str(exc), path=exc.path) from exc


async def _check_references(session: AsyncSession, segment_id: str, node: Node) -> dict[str, Any]:
    deps = dependencies(node)
    if deps.segments:
        known = set(
            (
                await session.execute(select(Segment.id).where(Segment.id.in_(deps.segments)))
            ).scalars()
        )
        missing = sorted(deps.segments - known - {segment_id})
        if missing:
            raise ApiError(422, "invalid_definition", f"unknown segment(s) {missing}")
        everything = {
            sid: Loaded(sid, name, parse(d), dependencies(parse(d)))
            for sid, name, d in await session.execute(
                select(Segment.id, Segment.name, Segment.definition)
            )
        }
        everything[segment_id] = Loaded(segment_id, segment_id, node, deps)
        try:
            order(everything)
        except ValueError as exc:
            raise ApiError(422, "invalid_definition", str(exc)) from exc
    return deps.as_json()


async def _schedule_recompute(session: AsyncSession, segment_id: str) -> None:
    await timers.schedule(
        session,
        kind=RECOMPUTE_TIMER,
        key=f"{RECOMPUTE_TIMER}:{segment_id}",
        due_at=utcnow(),
        payload={"segment": segment_id},
    )


async def create(session: AsyncSession, *, data: SegmentCreate) -> SegmentRead:
    node = check(data.definition)
    if await session.get(Segment, data.id) is not None:
        raise ApiError(409, "segment_exists", f"segment {data.id!r} already exists")
    deps = await _check_references(session, data.id, node)
    now = utcnow()
    segment = Segment(
        id=data.id,
        name=data.name,
        description=data.description,
        definition=data.definition,
        dependencies=deps,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await session.flush()
    await _schedule_recompute(session, data.id)
    return await read(session, segment=segment)


async def update(session: AsyncSession, *, segment: Segment, data: SegmentWrite) -> SegmentRead:
    node = check(data.definition)
    deps = await _check_references(session, segment.id, node)
    changed = data.definition != segment.definition
    segment.name, segment.description = data.name, data.description
    if changed:
        segment.definition, segment.dependencies = data.definition, deps
        segment.version += 1
        await _schedule_recompute(session, segment.id)
    segment.updated_at = utcnow()
    await session.flush()
    return await read(session, segment=segment)


async def remove(session: AsyncSession, *, segment: Segment) -> None:
    users = [
        sid
        for sid, deps in await session.execute(select(Segment.id, Segment.dependencies))
        if segment.id in deps.get("segments", []) and sid != segment.id
    ]
    if users:
        raise ApiError(409, "segment_in_use", f"segments {sorted(users)} are built on this one")
    await session.execute(
        delete(SegmentMembership).where(SegmentMembership.segment_id == segment.id)
    )
    await timers.cancel(session, key=f"{RECOMPUTE_TIMER}:{segment.id}")
    await session.delete(segment)


async def get(session: AsyncSession, *, segment_id: str) -> Segment | None:
    return await session.get(Segment, segment_id)


async def _count(session: AsyncSession, segment_id: str) -> int:
    stmt = select(func.count()).where(
        SegmentMembership.segment_id == segment_id, SegmentMembership.active.is_(True)
    )
    return int((await session.execute(stmt)).scalar_one())


async def read(session: AsyncSession, *, segment: Segment) -> SegmentRead:
    return SegmentRead(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        definition=segment.definition,
        dependencies=segment.dependencies,
        version=segment.version,
        members=await _count(session, segment.id),
        computed_at=segment.computed_at,
        updated_at=segment.updated_at,
    )


async def list_all(session: AsyncSession) -> list[SegmentRead]:
    segments = (await session.execute(select(Segment).order_by(Segment.id))).scalars()
    return [await read(session, segment=s) for s in segments]


async def preview(
    session: AsyncSession, *, definition: dict[str, Any], sample: int, now: datetime
) -> PreviewResult:
    node = check(definition)
    await _check_references(session, "__preview__", node)
    count, ids = await count_by_query(session, node, now, sample)
    return PreviewResult(count=count, sample=ids)


async def members(
    session: AsyncSession, *, segment_id: str, limit: int, after: str | None
) -> MemberPage:
    stmt = select(SegmentMembership.profile_id).where(
        SegmentMembership.segment_id == segment_id, SegmentMembership.active.is_(True)
    )
    if after:
        stmt = stmt.where(SegmentMembership.profile_id > after)
    ids = list(
        (
            await session.execute(stmt.order_by(SegmentMembership.profile_id).limit(limit + 1))
        ).scalars()
    )
    page = ids[:limit]
    return MemberPage(items=page, next=page[-1] if len(ids) > limit else None)


async def of_profile(session: AsyncSession, *, profile_id: str) -> list[ProfileSegment]:
    rows = await session.execute(
        select(Segment.id, Segment.name, SegmentMembership.entered_at)
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(SegmentMembership.profile_id == profile_id, SegmentMembership.active.is_(True))
        .order_by(Segment.id)
    )
    return [ProfileSegment(id=sid, name=name, entered_at=at) for sid, name, at in rows]


async def put(session: AsyncSession, *, data: SegmentCreate) -> SegmentRead:
    """Create the segment, or update it in place (loading files is idempotent)."""
    segment = await session.get(Segment, data.id)
    if segment is None:
        return await create(session, data=data)
    return await update(session, segment=segment, data=data)
