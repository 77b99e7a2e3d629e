"""What the journeys API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SLUG = r"^[a-z0-9][a-z0-9_\-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JourneyWrite(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    definition: dict[str, Any] = Field(description="Entry, goal, re-entry and nodes; see docs.")


class JourneyCreate(JourneyWrite):
    id: str = Field(min_length=1, max_length=100, pattern=SLUG, description="e.g. abandoned-cart")


class PublishRequest(Strict):
    migrate: dict[str, str] = Field(
        default_factory=dict,
        description="Old node → new node: runs waiting at an old node move to the new version "
        "there. Without it, runs in flight stay on the version they entered.",
    )


class VersionRead(BaseModel):
    version: int
    published_at: datetime
    published_by: str
    migrated: dict[str, Any]


class JourneyRead(BaseModel):
    id: str
    name: str
    description: str
    status: str
    live_version: int | None
    definition: dict[str, Any] = Field(description="The draft the next publish makes live.")
    versions: list[VersionRead]
    created_at: datetime
    updated_at: datetime


class JourneySummary(BaseModel):
    id: str
    name: str
    status: str
    live_version: int | None
    active: int = Field(description="Runs in progress (active or waiting).")
    entered: int


class PublishResult(BaseModel):
    journey: JourneyRead
    version: int
    migrated_runs: int


class StopResult(BaseModel):
    journey: JourneyRead
    exited_runs: int


class NodeStats(BaseModel):
    kind: str
    executed: int = Field(description="Times the node ran.")
    waiting: int = Field(description="Runs waiting here now.")
    exited: int = Field(description="Runs that finished here (completed or exited).")
    converted: int = Field(description="Runs converted while here.")
    outcomes: dict[str, int] = Field(description="Executions by outcome (branch and variant).")
    converted_by_outcome: dict[str, int] = Field(
        description="Runs that took each outcome here and converted later."
    )


class GroupStats(BaseModel):
    entered: int = 0
    active: int = 0
    completed: int = 0
    exited: int = 0
    converted: int = 0


class JourneyStats(BaseModel):
    journey_id: str
    totals: GroupStats
    versions: dict[str, GroupStats]
    variants: dict[str, GroupStats]
    nodes: dict[str, NodeStats]


class StepRead(BaseModel):
    node: str
    kind: str
    visit: int
    outcome: str
    detail: dict[str, Any]
    at: datetime


class RunRead(BaseModel):
    id: int
    journey_id: str
    journey_name: str
    version: int
    status: str
    node: str
    variant: str | None
    waiting_for: str | None
    wait_until: datetime | None
    entered_at: datetime
    finished_at: datetime | None
    exit_reason: str | None
    steps: list[StepRead]
