"""What the profile API returns and accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class IdentityRead(BaseModel):
    type: str
    value: str


class ConsentRead(BaseModel):
    channel: str
    topic: str
    status: Literal["granted", "denied"]
    source: str
    updated_at: datetime


class ContactPointRead(BaseModel):
    kind: str
    value: str
    data: dict[str, Any]
    last_seen: datetime


class ProfileRead(BaseModel):
    id: str
    traits: dict[str, Any]
    identities: list[IdentityRead]
    consents: list[ConsentRead]
    contact_points: list[ContactPointRead]
    channels: dict[str, Any] = Field(description="Per channel: first_seen, last_seen, events.")
    first_seen: datetime
    last_seen: datetime
    merged_from: list[str] = Field(description="Profile ids folded into this one.")


class ProfileSummary(BaseModel):
    id: str
    traits: dict[str, Any]
    identities: list[IdentityRead]
    last_seen: datetime


class ProfileSearch(BaseModel):
    items: list[ProfileSummary]


class EventRead(BaseModel):
    id: int
    message_id: str
    type: str
    event: str | None
    channel: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    source: str


class TimelinePage(BaseModel):
    items: list[EventRead]
    next: str | None = Field(description="Pass as `before` for the next (older) page.")


class ConsentChange(BaseModel):
    channel: str = Field(min_length=1, max_length=40, description="email, sms, push, … or all")
    topic: str = Field("all", min_length=1, max_length=100)
    status: Literal["granted", "denied"]


class ConsentUpdate(BaseModel):
    consents: list[ConsentChange] = Field(min_length=1, max_length=100)
    source: str = Field("api", max_length=150, description="Where the customer said so.")


class ErasureResult(BaseModel):
    profile_id: str
    profiles_erased: int
    identifiers_suppressed: int
    events_anonymised: int


class ProfileExport(BaseModel):
    profile: ProfileRead
    events: list[EventRead]
    merges: list[dict[str, Any]]
