"""The ops package's one table: rate-limit counters shared by every API process."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base


class RateLimitWindow(Base):
    """One row per limited key: the current fixed window (epoch second it began) and its count."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
