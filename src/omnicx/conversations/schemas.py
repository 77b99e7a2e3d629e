"""Request and response bodies of the conversations API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["bot", "queued", "assigned", "resolved", "merged"]
Author = Literal["customer", "bot", "agent", "associate", "system"]
Channel = Literal["web", "inapp", "sms", "email", "store", "phone", "api"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Attachment(Strict):
    url: str = Field(max_length=2000, pattern=r"^https?://")
    name: str | None = Field(None, max_length=300)
    content_type: str | None = Field(None, max_length=200)


class MessageRead(BaseModel):
    id: int
    conversation_id: int
    author: str
    author_name: str | None
    channel: str
    body: str
    attachments: list[dict[str, Any]]
    internal: bool
    delivery: str
    read_at: datetime | None
    created_at: datetime


class ConversationRead(BaseModel):
    id: int
    profile_id: str
    status: str
    queue: str
    assignee: str | None
    store_id: str | None
    opened_by: str | None
    channel: str
    previous_id: int | None
    merged_into: int | None
    topic: str | None
    products: list[str]
    collected: dict[str, Any]
    handoff: dict[str, Any] | None
    customer_online: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime
    assigned_at: datetime | None
    resolved_at: datetime | None


class ConversationPage(BaseModel):
    items: list[ConversationRead]


class MessagePage(BaseModel):
    items: list[MessageRead]


class StaffMessageCreate(Strict):
    """An agent's reply, or (``internal``) a note only staff see. ``canned`` names a canned
    response to send instead of ``body``."""

    body: str | None = Field(None, min_length=1)
    canned: str | None = Field(None, max_length=100)
    internal: bool = False
    channel: Channel | None = Field(
        None, description="For notes: where it was noted (store, phone); replies go where she is."
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


class ConversationOpen(Strict):
    """A staff member (an associate in the store, an agent on the phone) opens the thread."""

    to: str = Field(min_length=1, max_length=600, description="External id of the customer.")
    body: str = Field(min_length=1, description="The first note or message.")
    internal: bool = True
    channel: Literal["store", "phone", "api"] = "store"
    store_id: str | None = Field(None, max_length=100)


class AssignRequest(Strict):
    agent: str | None = Field(
        None, max_length=200, description="Agent name; omitted: round robin in the queue."
    )
    queue: str | None = Field(None, max_length=100, description="Move to this queue first.")


class HandoffRequest(Strict):
    reason: str = Field("requested by staff", max_length=500)
    queue: str | None = Field(None, max_length=100)


class ResolveRequest(Strict):
    csat: bool = Field(True, description="Ask the customer for a CSAT score.")


class AgentWrite(Strict):
    queues: list[str] = Field(default_factory=lambda: ["support"], max_length=50)
    capacity: int = Field(5, ge=0, le=1000)
    active: bool = True


class AgentRead(BaseModel):
    name: str
    queues: list[str]
    capacity: int
    active: bool
    open_conversations: int


class CannedWrite(Strict):
    body: str = Field(min_length=1, max_length=10_000)


class CannedRead(BaseModel):
    name: str
    body: str


class FaqWrite(Strict):
    questions: list[str] = Field(min_length=1, max_length=50)
    answer: str = Field(min_length=1, max_length=10_000)
    topic: str | None = Field(None, max_length=200)


class FaqRead(BaseModel):
    id: str
    questions: list[str]
    answer: str
    topic: str | None


class CustomerMessageCreate(Strict):
    """A message the customer types in the widget or the app."""

    body: str = Field(min_length=1)
    attachments: list[Attachment] = Field(default_factory=list, max_length=10)


class ConversationContext(BaseModel):
    """What journeys, templates and the store view know of the customer's last conversation."""

    conversation_id: int | None
    status: str | None
    topic: str | None
    products: list[str]
    collected: dict[str, Any]
    last_message_at: datetime | None
