"""The brand kit: one document, applied to every variant of every message."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import dialect_insert
from omnicx.messaging.models import BrandKitRow
from omnicx.messaging.schemas import BrandKit
from omnicx.messaging.templates import check_brand

KIT_ID = 1


async def load_brand(session: AsyncSession) -> BrandKit:
    """The saved kit, or the defaults before anyone saved one."""
    row = await session.get(BrandKitRow, KIT_ID)
    return BrandKit.model_validate(row.kit) if row is not None else BrandKit()


async def save_brand(session: AsyncSession, *, kit: BrandKit, now: datetime) -> BrandKit:
    """Check the kit's partials and layout (``TemplateInvalid``), then replace the saved one."""
    check_brand(kit)
    stmt = dialect_insert(session, BrandKitRow).values(
        id=KIT_ID, kit=kit.model_dump(mode="json"), updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"], set_={"kit": stmt.excluded.kit, "updated_at": now}
    )
    await session.execute(stmt)
    return kit
