"""``/api/segments``: definitions, preview, members; and a profile's segments."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import READERS, require
from omnicx.auth.service import Role, Staff
from omnicx.db import Db, utcnow
from omnicx.errors import ApiError
from omnicx.profiles.router import find_profile
from omnicx.segments import service
from omnicx.segments.models import Segment
from omnicx.segments.schemas import (
    MemberPage,
    PreviewRequest,
    PreviewResult,
    ProfileSegment,
    SegmentCreate,
    SegmentRead,
    SegmentWrite,
)

router = APIRouter(prefix="/api", tags=["segments"])

Reader = Annotated[Staff, Depends(require(Role.admin, Role.marketer, Role.analyst, Role.agent))]
Writer = Annotated[Staff, Depends(require(Role.admin, Role.marketer))]
ProfileReader = Annotated[Staff, Depends(require(*READERS))]


async def _segment(session: AsyncSession, segment_id: str) -> Segment:
    segment = await service.get(session, segment_id=segment_id)
    if segment is None:
        raise ApiError(404, "segment_not_found", f"no segment {segment_id!r}")
    return segment


@router.get("/segments", response_model=list[SegmentRead])
async def list_segments(db: Db, _staff: Reader) -> list[SegmentRead]:
    """Every segment with its member count."""
    async with db.session() as session:
        return await service.list_all(session)


@router.post("/segments", response_model=SegmentRead, status_code=201)
async def create_segment(db: Db, _staff: Writer, body: SegmentCreate) -> SegmentRead:
    """Create a segment; its members are computed in the background, then kept current."""

    async def work(session: AsyncSession) -> SegmentRead:
        return await service.create(session, data=body)

    return await db.transaction(work)


@router.post("/segments/preview", response_model=PreviewResult)
async def preview_segment(db: Db, _staff: Reader, body: PreviewRequest) -> PreviewResult:
    """Count (and sample) who a definition matches now, without saving it."""
    async with db.session() as session:
        return await service.preview(
            session, definition=body.definition, sample=body.sample, now=utcnow()
        )


@router.get("/segments/{segment_id}", response_model=SegmentRead)
async def get_segment(db: Db, _staff: Reader, segment_id: str) -> SegmentRead:
    """One segment with its definition and member count."""
    async with db.session() as session:
        return await service.read(session, segment=await _segment(session, segment_id))


@router.put("/segments/{segment_id}", response_model=SegmentRead)
async def update_segment(
    db: Db, _staff: Writer, segment_id: str, body: SegmentWrite
) -> SegmentRead:
    """Change a segment; a new definition is recomputed in the background."""

    async def work(session: AsyncSession) -> SegmentRead:
        return await service.update(session, segment=await _segment(session, segment_id), data=body)

    return await db.transaction(work)


@router.delete("/segments/{segment_id}", status_code=204)
async def delete_segment(db: Db, _staff: Writer, segment_id: str) -> Response:
    """Delete a segment (refused while another segment is built on it)."""

    async def work(session: AsyncSession) -> None:
        await service.remove(session, segment=await _segment(session, segment_id))

    await db.transaction(work)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/members", response_model=MemberPage)
async def segment_members(
    db: Db,
    _staff: Reader,
    segment_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str | None, Query(max_length=32, description="`next` of the last page")
    ] = None,
) -> MemberPage:
    """Member profile ids, in pages."""
    async with db.session() as session:
        await _segment(session, segment_id)
        return await service.members(session, segment_id=segment_id, limit=limit, after=after)


@router.get("/segments/{segment_id}/members.csv")
async def segment_members_csv(db: Db, _staff: Reader, segment_id: str) -> Response:
    """Every member as CSV: profile id and when they entered."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["profile_id"])
    async with db.session() as session:
        await _segment(session, segment_id)
        after: str | None = None
        while True:
            page = await service.members(session, segment_id=segment_id, limit=1000, after=after)
            writer.writerows([pid] for pid in page.items)
            if page.next is None:
                break
            after = page.next
    headers = {"Content-Disposition": f'attachment; filename="{segment_id}-members.csv"'}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@router.get("/profiles/{external_id}/segments", response_model=list[ProfileSegment])
async def profile_segments(db: Db, _staff: ProfileReader, external_id: str) -> list[ProfileSegment]:
    """The segments a profile is in now."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await service.of_profile(session, profile_id=profile.id)
