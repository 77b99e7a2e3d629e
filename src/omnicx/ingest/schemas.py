"""The Segment tracking spec, as OmniCX accepts it.

Every event is validated on its own so that a batch can store its good events and say exactly
which others were refused and why. Unknown fields are kept (``extra="allow"``) as Segment does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]


def _id_to_str(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


IdStr = Annotated[str, BeforeValidator(_id_to_str), Field(max_length=512)]


class EventIn(BaseModel):
    """One call of the tracking API (track, identify, page, screen, group or alias)."""

    model_config = ConfigDict(extra="allow")

    type: EventType
    messageId: (
        Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1, max_length=200)] | None
    ) = None
    userId: IdStr | None = None
    anonymousId: IdStr | None = None
    previousId: IdStr | None = None
    groupId: IdStr | None = None
    event: Annotated[str, Field(max_length=200)] | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    category: Annotated[str, Field(max_length=200)] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    writeKey: str | None = None

    @field_validator("timestamp", "originalTimestamp", "sentAt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _required_per_type(self) -> EventIn:
        if self.type == "alias":
            if not self.userId or not self.previousId:
                raise ValueError("alias needs userId and previousId")
        elif not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not self.event:
            raise ValueError("track needs an event name")
        if self.type == "group" and not self.groupId:
            raise ValueError("group needs a groupId")
        return self


class BatchIn(BaseModel):
    """``/v1/batch``: up to 2,500 events and 500 KB; batch-level ``context`` applies to each."""

    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]]
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    sentAt: datetime | None = None
    writeKey: str | None = None


class Rejected(BaseModel):
    index: int
    messageId: str | None
    code: str
    message: str


class IngestResult(BaseModel):
    success: bool = True
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = Field(default_factory=list)
