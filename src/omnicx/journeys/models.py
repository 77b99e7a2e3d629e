"""Journeys, their published versions, each customer's run through one, and every step it took.

A run is pinned to the version it entered (``version``); ``node`` is where it is, ``visit``
counts the steps it has executed (so ``(run, node, visit)`` names one execution, and a send's
idempotency key is built from it). ``context`` holds the trigger event's properties, which
templates, waits and matches read. A run waiting for an event carries the event's name and the
property values it must match (``waiting_event``, ``waiting_match``), so an incoming event finds
the runs it wakes by an indexed lookup on its profile, never by scanning.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Journey(Base):
    __tablename__ = "journeys"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(10))  # draft | live | paused | stopped
    # The draft: what the next publish makes a version of.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    live_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JourneyVersion(Base):
    __tablename__ = "journey_versions"

    journey_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_by: Mapped[str] = mapped_column(String(200), default="")
    # {old node: new node} the publisher migrated waiting runs by, if any.
    migrated: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class JourneyRun(Base):
    __tablename__ = "journey_runs"
    __table_args__ = (
        # One entry per key: the key property's value (e.g. a cart id) or the trigger event.
        UniqueConstraint("journey_id", "profile_id", "entry_key"),
        Index("ix_journey_runs_profile_status", "profile_id", "status"),
        Index("ix_journey_runs_journey_node_status", "journey_id", "node", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    profile_id: Mapped[str] = mapped_column(String(32))
    entry_key: Mapped[str] = mapped_column(String(64))
    # active | waiting | completed | exited | converted
    status: Mapped[str] = mapped_column(String(10))
    node: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer, default=0)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    variant: Mapped[str | None] = mapped_column(String(100))
    waiting_event: Mapped[str | None] = mapped_column(String(200))
    waiting_match: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    wait_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(200))


class JourneyStep(Base):
    """One executed node of one run; unique per visit, so a step is never executed twice."""

    __tablename__ = "journey_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "node", "visit"),
        Index("ix_journey_steps_journey_node", "journey_id", "node"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId)
    journey_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(100))
    visit: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
