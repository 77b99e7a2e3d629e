"""Orders written straight into the commerce tables, as analytics reads them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce.models import Order
from omnicx.db import Database

_ids = itertools.count()


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def add_orders(
    db: Database,
    rows: Iterable[tuple[str | None, datetime, float]],
    *,
    status: str = "completed",
    refunded: float = 0.0,
) -> None:
    """One order per (profile_id, placed_at, total)."""
    orders = [
        Order(
            id=f"O-{next(_ids)}",
            profile_id=profile_id,
            status=status,
            channel="web",
            fulfillment="delivery",
            currency="USD",
            total=Decimal(str(total)),
            refunded=Decimal(str(refunded)),
            placed_at=placed_at,
            updated_at=placed_at,
        )
        for profile_id, placed_at, total in rows
    ]

    async def work(session: AsyncSession) -> None:
        session.add_all(orders)

    await db.transaction(work)
