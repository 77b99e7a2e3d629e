"""Analytics tables: computed traits per profile, survey answers, and refresh runs.

Computed traits live in their own table keyed by profile id rather than in ``profiles.traits``:
ingest rewrites a profile's traits by event time, and a nightly refresh of a million rows there
would both fight that ordering and hold locks ingest needs. Segments, journeys and the console
read them from here (``omnicx.analytics.service.computed_traits``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime


class ComputedTraits(Base):
    """Traits OmniCX computes (CLV, P(alive), RFM, last CSAT/NPS), one flat object per profile."""

    __tablename__ = "computed_traits"

    profile_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyResponse(Base):
    """One CSAT (1-5) or NPS (0-10) answer, from a ``Survey Answered`` event."""

    __tablename__ = "survey_responses"
    __table_args__ = (Index("ix_survey_responses_survey_answered", "survey", "answered_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(220), unique=True)  # source id:message id
    profile_id: Mapped[str] = mapped_column(String(32), index=True)
    survey: Mapped[str] = mapped_column(String(10))  # csat | nps
    score: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(40))
    journey_id: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(200))
    store_id: Mapped[str | None] = mapped_column(String(100))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AnalyticsRun(Base):
    """A CLV refresh: when, how many customers, the fitted parameters."""

    __tablename__ = "analytics_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


def computed_traits_of(profile_id: Any) -> Any:
    """A JSON SQL expression for the computed traits of ``profile_id`` (e.g. ``Profile.id``),
    NULL when none: index it like a JSON column, ``computed_traits_of(Profile.id)["p_alive"]``.
    Segments compile ``{"computed": …}`` conditions with it."""
    return (
        select(ComputedTraits.traits)
        .where(ComputedTraits.profile_id == profile_id)
        .scalar_subquery()
    )
