"""Analytics: CLV, churn and retention, CSAT and NPS, experiments, attribution and paths."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import utcnow
from omnicx.hooks import ALL_PROFILES, Hooks, StoredEvent
from omnicx.settings import Settings


def register(hooks: Hooks, settings: Settings) -> None:
    """Survey answers from ingest, the scheduled CLV refresh, merges and erasure."""
    from omnicx.analytics import service, surveys
    from omnicx.analytics.models import ComputedTraits

    async def project(session: AsyncSession, events: Sequence[StoredEvent]) -> None:
        await surveys.project(session, events)
        orders = [e for e in events if e.event == "Order Completed"]
        if orders:
            # The first order ever puts the periodic refresh on the timer table; later ones
            # find it there and change nothing.
            await service.schedule_refresh(session, settings=settings, now=utcnow(), replace=False)

    async def refresh(session: AsyncSession, _payload: dict[str, Any], now: datetime) -> None:
        await service.refresh(session, settings=settings, now=now)
        await service.schedule_refresh(session, settings=settings, now=now, replace=True)
        await hooks.changed(session, {ALL_PROFILES: {"computed": True}})

    async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
        await surveys.on_merge(session, into, from_)
        # The folded profile's CLV is recomputed into the survivor at the next refresh.
        await session.execute(delete(ComputedTraits).where(ComputedTraits.profile_id == from_))

    async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
        await surveys.on_erase(session, profile_ids)
        await session.execute(
            delete(ComputedTraits).where(ComputedTraits.profile_id.in_(profile_ids))
        )

    hooks.projectors.append(project)
    hooks.on_merge.append(on_merge)
    hooks.on_erase.append(on_erase)
    hooks.timer(service.REFRESH_TIMER, refresh)
