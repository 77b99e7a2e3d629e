"""What the segments API returns and accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class SegmentWrite(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    definition: dict[str, Any] = Field(description="The condition; see the segments docs.")


class SegmentCreate(SegmentWrite):
    id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9_\-]*$",
        description="A stable slug, e.g. cart-abandoners",
    )


class SegmentRead(BaseModel):
    id: str
    name: str
    description: str
    definition: dict[str, Any]
    dependencies: dict[str, Any]
    version: int
    members: int
    computed_at: datetime | None
    updated_at: datetime


class PreviewRequest(BaseModel):
    definition: dict[str, Any]
    sample: int = Field(10, ge=0, le=100)


class PreviewResult(BaseModel):
    count: int
    sample: list[str] = Field(description="Profile ids, a few of the members.")


class MemberPage(BaseModel):
    items: list[str]
    next: str | None


class ProfileSegment(BaseModel):
    id: str
    name: str
    entered_at: datetime | None
