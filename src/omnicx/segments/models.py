"""Segments, their members, and the queue of profiles to re-evaluate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Segment(Base):
    __tablename__ = "segments"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    dependencies: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(Integer, default=1)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentMembership(Base):
    """A profile's membership of a segment; kept after exit so re-entry is counted."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_active", "segment_id", "active", "profile_id"),)

    segment_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean)
    changes: Mapped[int] = mapped_column(Integer, default=1)
    entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SegmentWork(Base):
    """A profile something happened to; the worker re-evaluates the segments it can affect."""

    __tablename__ = "segment_work"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(32), index=True)
    # {"events": [...], "traits": [...], "commerce": bool, "consent": bool, "all": bool, ...}
    reasons: Mapped[dict[str, Any]] = mapped_column(JSONType)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
