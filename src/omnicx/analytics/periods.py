"""Calendar periods in UTC: day, week (Monday to Sunday), month and quarter, as integer indexes.

Reports group by UTC calendar periods; a shop whose day ends elsewhere sees a few hours moved
to the neighbouring period, which we accept for one definition across every report.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, cast, extract, func
from sqlalchemy.ext.asyncio import AsyncSession

Period = Literal["day", "week", "month", "quarter"]
EPOCH = date(1970, 1, 1)


def day_number_sql(session: AsyncSession, column: Any) -> Any:
    """SQL for the UTC day number (days since 1970-01-01) of a UTC timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(extract("epoch", column) / 86400), Integer)
    return cast(func.julianday(func.substr(column, 1, 10)) - 2440587.5, Integer)


def day_number(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - EPOCH).days


def period_of_day(day: int, period: Period) -> int:
    if period == "day":
        return day
    if period == "week":
        return (day + 3) // 7  # 1970-01-01 was a Thursday: weeks start on Mondays
    d = EPOCH + timedelta(days=day)
    month = d.year * 12 + d.month - 1
    return month if period == "month" else month // 3


def period_index(moment: datetime, period: Period) -> int:
    return period_of_day(day_number(moment), period)


def period_start(index: int, period: Period) -> datetime:
    if period == "day":
        d = EPOCH + timedelta(days=index)
    elif period == "week":
        d = EPOCH + timedelta(days=index * 7 - 3)
    else:
        month = index if period == "month" else index * 3
        d = date(month // 12, month % 12 + 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def bucket_label(index: int, period: Period) -> str:
    start = period_start(index, period)
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "quarter":
        return f"{start.year}-Q{start.month // 3 + 1}"
    return start.date().isoformat()
