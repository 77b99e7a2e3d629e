"""Templates, the brand kit, the delivery log (one row per message) and the suppression list.

The ``messages`` row is the delivery log and the send queue at once: it is written (with its
idempotency key) before anything leaves, a worker claims it by moving it to ``sending``, and
``due_at`` says when it may next be tried (or, while ``sending``, when the claim lapses). The
in-app inbox is a view of the same rows (``channel = 'inapp'``) with its own ``inbox_state``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow


class MessageTemplate(Base):
    """A named piece of content with one variant per channel (Liquid sources)."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(1000), default="")
    category: Mapped[str] = mapped_column(String(20))  # marketing | transactional
    topic: Mapped[str] = mapped_column(String(100))  # the subscription group
    variants: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BrandKitRow(Base):
    """The brand kit, one document (validated by ``schemas.BrandKit``)."""

    __tablename__ = "brand_kits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kit: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_queue", "status", "provider", "due_at"),
        Index("ix_messages_profile", "profile_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    profile_id: Mapped[str | None] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(100))
    requested: Mapped[str] = mapped_column(String(200))  # a channel, "auto" or a chain a,b,c
    channel: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(40))
    choice_reason: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(1000))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    to: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    content: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    provider_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    inbox_state: Mapped[str | None] = mapped_column(String(10))  # unread | read | dismissed
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageSuppression(Base):
    """An address no message may reach (hard bounce, complaint, erasure, by hand), kept only as
    a keyed hash so an erased person's address is not held in clear."""

    __tablename__ = "message_suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
