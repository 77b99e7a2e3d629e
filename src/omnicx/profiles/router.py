"""``/api/profiles``: the unified profile, its timeline, consent, export and erasure."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import READERS, require
from omnicx.auth.service import Role, Staff
from omnicx.db import Database, Db
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.profiles import service
from omnicx.profiles.models import Profile
from omnicx.profiles.record import rules_from
from omnicx.profiles.schemas import (
    ConsentUpdate,
    ErasureResult,
    ProfileExport,
    ProfileRead,
    ProfileSearch,
    TimelinePage,
)

router = APIRouter(prefix="/api/profiles", tags=["profiles"])

Reader = Annotated[Staff, Depends(require(*READERS))]
ConsentWriter = Annotated[
    Staff, Depends(require(Role.admin, Role.marketer, Role.agent, Role.store_associate))
]
Admin = Annotated[Staff, Depends(require(Role.admin))]


async def find_profile(db: Database, session: AsyncSession, external_id: str) -> Profile:
    profile = await service.get_by_external_id(
        session, external_id=external_id, rules=rules_from(db.settings)
    )
    if profile is None:
        raise ApiError(404, "profile_not_found", f"no profile for {external_id!r}")
    return profile


@router.get("", response_model=ProfileSearch)
async def search_profiles(
    db: Db,
    _staff: Reader,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ProfileSearch:
    """Find profiles by identifier (prefix, or exact normalised email/phone) or trait value."""
    async with db.session() as session:
        items = await service.search(session, q=q, rules=rules_from(db.settings), limit=limit)
    return ProfileSearch(items=items)


@router.get("/{external_id}", response_model=ProfileRead)
async def get_profile(db: Db, _staff: Reader, external_id: str) -> ProfileRead:
    """One unified profile: traits, identities, consents, contact points, activity."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await service.read(session, profile=profile)


@router.get("/{external_id}/events", response_model=TimelinePage)
async def get_timeline(
    db: Db,
    _staff: Reader,
    external_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        str | None, Query(description="`next` of the previous page, or an ISO time")
    ] = None,
    type: Annotated[
        Literal["track", "identify", "page", "screen", "group", "alias"] | None, Query()
    ] = None,
    event: Annotated[str | None, Query(max_length=200)] = None,
) -> TimelinePage:
    """The profile's timeline, newest first, across every source and channel."""
    cursor = None
    if before:
        try:
            cursor = service.parse_cursor(before)
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", f"before: {exc}") from exc
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await service.timeline(
            session,
            profile_id=profile.id,
            limit=limit,
            before=cursor,
            event_type=type,
            event_name=event,
        )


@router.put("/{external_id}/consent", response_model=ProfileRead)
async def put_consent(
    db: Db, hooks: AppHooks, staff: ConsentWriter, external_id: str, body: ConsentUpdate
) -> ProfileRead:
    """Record the customer's consent per channel and topic (granted or denied)."""

    async def work(session: AsyncSession) -> ProfileRead:
        profile = await find_profile(db, session, external_id)
        await service.change_consent(
            session, profile=profile, update_=body, actor=staff.name, hooks=hooks
        )
        await session.flush()
        return await service.read(session, profile=profile)

    return await db.transaction(work)


@router.get("/{external_id}/export", response_model=ProfileExport)
async def export_profile(db: Db, _staff: Admin, external_id: str) -> ProfileExport:
    """Everything held on the person, as JSON (GDPR access request)."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await service.export(session, profile=profile)


@router.delete("/{external_id}", response_model=ErasureResult)
async def erase_profile(db: Db, hooks: AppHooks, _staff: Admin, external_id: str) -> ErasureResult:
    """Erase the person (GDPR): personal data removed everywhere, identifiers suppressed."""
    secret = db.settings.secret_key.get_secret_value()

    async def work(session: AsyncSession) -> ErasureResult:
        profile = await find_profile(db, session, external_id)
        return await service.erase(session, profile=profile, secret=secret, hooks=hooks)

    return await db.transaction(work)
