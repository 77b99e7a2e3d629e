"""Profiles, their identities and merges, consents, contact points, suppressions and events.

The events table is the timeline: ingest writes each event once (unique per source and
messageId) in the same transaction that resolves it to a profile, so a profile shows an
acknowledged event at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Profile(Base):
    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # When each trait was last set (event time, ISO): a later event wins, not a later arrival.
    trait_times: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # Per channel: {"first_seen": iso, "last_seen": iso, "events": n}.
    channels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    merged_into: Mapped[str | None] = mapped_column(String(32), index=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("type", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Merge(Base):
    """One profile folded into another, and the event that linked them."""

    __tablename__ = "profile_merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    into_profile_id: Mapped[str] = mapped_column(String(32), index=True)
    from_profile_id: Mapped[str] = mapped_column(String(32), index=True)
    source_id: Mapped[int | None] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(200))
    # Identifier types (never values) that linked the two, e.g. ["user_id", "anonymous_id"].
    linked_by: Mapped[list[str]] = mapped_column(JSONType, default=list)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("profile_id", "channel", "topic"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))  # granted | denied
    source: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactPoint(Base):
    """An address to reach the person on: email, phone, push token, web-push subscription."""

    __tablename__ = "contact_points"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(2048))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Base):
    """An erased identifier, kept only as a keyed hash so later events for it are refused."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    identifier_type: Mapped[str] = mapped_column(String(64))
    refused_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source_id", "message_id"),
        Index("ix_events_profile_timeline", "profile_id", "timestamp", "id"),
        # Who did X in the last N days (segments, full recompute): a range, not a scan of all.
        Index("ix_events_event_timestamp", "event", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    message_id: Mapped[str] = mapped_column(String(200))
    profile_id: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(10))
    event: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str | None] = mapped_column(String(512))
    anonymous_id: Mapped[str | None] = mapped_column(String(512))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    original_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
