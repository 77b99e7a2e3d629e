"""Conversations, their messages, the agents who answer them, canned responses and the FAQ.

A conversation belongs to one profile. ``open_key`` holds the profile id while the conversation
is open (``bot``, ``queued`` or ``assigned``) and is NULL once it is resolved (or folded into
another by a profile merge); its unique constraint is what guarantees a customer at most one open
conversation on both databases (NULLs never collide), even when two channels write at once.

Messages carry their author (customer, bot, agent, associate, system), the channel they came by
or went out on, attachments (links), and delivery / read state. Internal notes are messages with
``internal`` set: agents and associates see them, customers never do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow

OPEN_STATUSES = ("bot", "queued", "assigned")
STATUSES = (*OPEN_STATUSES, "resolved", "merged")
AUTHORS = ("customer", "bot", "agent", "associate", "system")
CHANNELS = ("web", "inapp", "sms", "email", "store", "phone", "api")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_profile", "profile_id", "created_at"),
        Index("ix_conversations_status_queue", "status", "queue", "last_message_at"),
        Index("ix_conversations_assignee_status", "assignee", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(32))
    open_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    queue: Mapped[str] = mapped_column(String(100))
    assignee: Mapped[str | None] = mapped_column(String(200))
    store_id: Mapped[str | None] = mapped_column(String(100), index=True)
    opened_by: Mapped[str | None] = mapped_column(String(200))  # staff who opened it, if any
    channel: Mapped[str] = mapped_column(String(10))  # the customer's last channel
    previous_id: Mapped[int | None] = mapped_column(BigId)  # the resolved one this follows
    merged_into: Mapped[int | None] = mapped_column(BigId)
    topic: Mapped[str | None] = mapped_column(String(200))
    products: Mapped[list[str]] = mapped_column(JSONType, default=list)
    collected: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    customer_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # live presence
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    csat_message_id: Mapped[int | None] = mapped_column(BigId)


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_conversation", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    author: Mapped[str] = mapped_column(String(10))
    author_name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    # Email Message-ID or Twilio MessageSid: a webhook delivered twice is stored once.
    external_id: Mapped[str | None] = mapped_column(String(500), unique=True)
    # pending | live (shown in an open widget) | queued (sent through messaging) | delivered |
    # failed; the messaging row, when it went that way.
    delivery: Mapped[str] = mapped_column(String(10), default="pending")
    delivery_message_id: Mapped[int | None] = mapped_column(BigId)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Agent(Base):
    """Someone who answers conversations: the name of their staff token, the queues (teams) they
    serve and how many open conversations they take at once."""

    __tablename__ = "conversation_agents"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSONType, default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=5)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CannedResponse(Base):
    __tablename__ = "conversation_canned_responses"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FaqEntry(Base):
    """A question the bot answers: the ways customers ask it, and the answer."""

    __tablename__ = "conversation_faq"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    questions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    answer: Mapped[str] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
