"""``/api/journeys``: drafts, publish, pause, resume, stop, stats; and a customer's journeys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import READERS, require
from omnicx.auth.service import Role, Staff
from omnicx.db import Db, utcnow
from omnicx.hooks import AppHooks
from omnicx.journeys import catalog, service, stats
from omnicx.journeys.schemas import (
    JourneyCreate,
    JourneyRead,
    JourneyStats,
    JourneySummary,
    JourneyWrite,
    PublishRequest,
    PublishResult,
    RunRead,
    StopResult,
)
from omnicx.profiles.router import find_profile

router = APIRouter(prefix="/api", tags=["journeys"])

Reader = Annotated[Staff, Depends(require(Role.admin, Role.marketer, Role.analyst, Role.agent))]
Writer = Annotated[Staff, Depends(require(Role.admin, Role.marketer))]
ProfileReader = Annotated[Staff, Depends(require(*READERS))]


@router.get("/journeys", response_model=list[JourneySummary])
async def list_journeys(db: Db, _staff: Reader) -> list[JourneySummary]:
    """Every journey with its status, live version and how many customers are in it."""
    async with db.session() as session:
        return await service.list_all(session)


@router.post("/journeys", response_model=JourneyRead, status_code=201)
async def create_journey(db: Db, _staff: Writer, body: JourneyCreate) -> JourneyRead:
    """Create a journey as a draft (validated; nothing runs until it is published)."""

    async def work(session: AsyncSession) -> JourneyRead:
        journey = await service.create(session, data=body, now=utcnow())
        return await service.read(session, journey=journey)

    return await db.transaction(work)


@router.get("/journeys/{journey_id}", response_model=JourneyRead)
async def get_journey(db: Db, _staff: Reader, journey_id: str) -> JourneyRead:
    """One journey: its draft, status and published versions."""
    async with db.session() as session:
        return await service.read(session, journey=await service.get_or_404(session, journey_id))


@router.put("/journeys/{journey_id}", response_model=JourneyRead)
async def update_journey(
    db: Db, _staff: Writer, journey_id: str, body: JourneyWrite
) -> JourneyRead:
    """Change a journey's name and draft; customers see it only once it is published."""

    async def work(session: AsyncSession) -> JourneyRead:
        journey = await service.get_or_404(session, journey_id)
        journey = await service.update_draft(session, journey=journey, data=body, now=utcnow())
        return await service.read(session, journey=journey)

    return await db.transaction(work)


@router.delete("/journeys/{journey_id}", status_code=204)
async def delete_journey(db: Db, _staff: Writer, journey_id: str) -> Response:
    """Delete a draft or stopped journey with its runs."""

    async def work(session: AsyncSession) -> None:
        await service.remove(session, journey=await service.get_or_404(session, journey_id))

    await db.transaction(work)
    catalog.changed()
    return Response(status_code=204)


@router.post("/journeys/{journey_id}/publish", response_model=PublishResult)
async def publish_journey(
    db: Db, staff: Writer, journey_id: str, body: PublishRequest | None = None
) -> PublishResult:
    """Publish the draft as a new version; new customers enter it, others stay unless mapped."""
    migrate = body.migrate if body is not None else {}

    async def work(session: AsyncSession) -> PublishResult:
        journey = await service.get_or_404(session, journey_id)
        version, moved = await service.publish(
            session, journey=journey, migrate=migrate, by=staff.name, now=utcnow()
        )
        return PublishResult(
            journey=await service.read(session, journey=journey),
            version=version,
            migrated_runs=moved,
        )

    result = await db.transaction(work)
    catalog.changed()
    return result


async def _status(db: Db, journey_id: str, to: str) -> JourneyRead:
    async def work(session: AsyncSession) -> JourneyRead:
        journey = await service.get_or_404(session, journey_id)
        await service.set_status(session, journey=journey, to=to, now=utcnow())
        return await service.read(session, journey=journey)

    result = await db.transaction(work)
    catalog.changed()
    return result


@router.post("/journeys/{journey_id}/pause", response_model=JourneyRead)
async def pause_journey(db: Db, _staff: Writer, journey_id: str) -> JourneyRead:
    """Pause: no one enters, and customers inside are held where they are."""
    return await _status(db, journey_id, "paused")


@router.post("/journeys/{journey_id}/resume", response_model=JourneyRead)
async def resume_journey(db: Db, _staff: Writer, journey_id: str) -> JourneyRead:
    """Resume a paused journey; held customers go on within the hold interval."""
    return await _status(db, journey_id, "live")


@router.post("/journeys/{journey_id}/stop", response_model=StopResult)
async def stop_journey(db: Db, hooks: AppHooks, _staff: Writer, journey_id: str) -> StopResult:
    """Stop for good: every customer inside exits now."""

    async def work(session: AsyncSession) -> StopResult:
        journey = await service.get_or_404(session, journey_id)
        exited = await service.stop(session, journey=journey, hooks=hooks, now=utcnow())
        return StopResult(journey=await service.read(session, journey=journey), exited_runs=exited)

    result = await db.transaction(work)
    catalog.changed()
    return result


@router.get("/journeys/{journey_id}/stats", response_model=JourneyStats)
async def journey_stats(db: Db, _staff: Reader, journey_id: str) -> JourneyStats:
    """Entered, waiting, exited and converted, per version, variant and node (branch arms)."""
    async with db.session() as session:
        await service.get_or_404(session, journey_id)
        return await stats.journey_stats(session, journey_id=journey_id)


@router.get("/profiles/{external_id}/journeys", response_model=list[RunRead])
async def profile_journeys(db: Db, _staff: ProfileReader, external_id: str) -> list[RunRead]:
    """A customer's journeys: where they are, and every step with its time and outcome."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await stats.profile_runs(session, profile_id=profile.id)
