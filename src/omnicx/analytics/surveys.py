"""CSAT and NPS: answers from ``Survey Answered`` events, results by channel, journey, agent, store
and period.

An answer is a track event ``Survey Answered`` with properties ``survey`` (``csat`` or ``nps``),
``score`` (CSAT 1-5, NPS 0-10), and optionally ``channel`` (where it was asked: email, sms, chat…;
default the event's own channel), ``journey_id``, ``agent`` and ``store_id``. Messaging, journeys
and conversations send the survey; whoever receives the answer sends this event. Each answer is
kept as a row of ``survey_responses`` (one per event, however often it is replayed) and the
latest per survey is written to the profile's computed traits: ``csat_last``/``csat_last_at``,
``nps_last``/``nps_last_at`` and ``nps_category`` (promoter, passive, detractor). An answer
that is not a valid survey or score stays on the timeline but is not counted.

CSAT is the share of answers scoring 4 or 5, NPS the share of promoters (9-10) minus the share of
detractors (0-6), both in percent. With no answers in a group either is ``None``, never 0.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics.models import SurveyResponse
from omnicx.analytics.periods import Period, bucket_label, day_number_sql, period_of_day
from omnicx.analytics.service import patch_traits
from omnicx.db import dialect_insert, utcnow
from omnicx.hooks import StoredEvent

log = logging.getLogger(__name__)
SURVEY_EVENT = "Survey Answered"
SCALES = {"csat": (1, 5), "nps": (0, 10)}
Dimension = Literal["channel", "journey", "agent", "store", "period"]
_COLUMNS = {
    "channel": SurveyResponse.channel,
    "journey": SurveyResponse.journey_id,
    "agent": SurveyResponse.agent,
    "store": SurveyResponse.store_id,
}


def parse_answer(ev: StoredEvent) -> dict[str, Any] | None:
    props = ev.properties
    survey = str(props.get("survey", "")).lower()
    score = props.get("score")
    if survey not in SCALES or isinstance(score, bool) or not isinstance(score, (int, float, str)):
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    low, high = SCALES[survey]
    if not value.is_integer() or not low <= value <= high:
        return None

    def text(key: str, limit: int) -> str | None:
        raw = props.get(key)
        return str(raw)[:limit] if raw not in (None, "") else None

    return {
        "event_key": f"{ev.source_id}:{ev.message_id}"[:220],
        "profile_id": ev.profile_id,
        "survey": survey,
        "score": int(value),
        "channel": text("channel", 40) or ev.channel,
        "journey_id": text("journey_id", 200),
        "agent": text("agent", 200),
        "store_id": text("store_id", 100),
        "answered_at": ev.timestamp,
    }


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


async def project(session: AsyncSession, events: Sequence[StoredEvent]) -> None:
    """Projector: store new answers and update the profiles' last CSAT / NPS."""
    rows = []
    for ev in events:
        if ev.event != SURVEY_EVENT:
            continue
        row = parse_answer(ev)
        if row is None:
            log.info("ignored survey answer %s: not a csat 1-5 or nps 0-10", ev.message_id)
            continue
        rows.append(row)
    if not rows:
        return
    stmt = dialect_insert(session, SurveyResponse).on_conflict_do_nothing(
        index_elements=["event_key"]
    )
    await session.execute(stmt, rows)
    for profile_id in {r["profile_id"] for r in rows}:
        await update_last_answers(session, profile_id=profile_id)


async def update_last_answers(session: AsyncSession, *, profile_id: str) -> None:
    traits: dict[str, Any] = {}
    for survey in SCALES:
        stmt = (
            select(SurveyResponse.score, SurveyResponse.answered_at)
            .where(SurveyResponse.profile_id == profile_id, SurveyResponse.survey == survey)
            .order_by(SurveyResponse.answered_at.desc(), SurveyResponse.id.desc())
            .limit(1)
        )
        latest = (await session.execute(stmt)).one_or_none()
        if latest is not None:
            traits[f"{survey}_last"] = latest.score
            traits[f"{survey}_last_at"] = latest.answered_at.isoformat()
            if survey == "nps":
                traits["nps_category"] = nps_category(latest.score)
    if traits:
        await patch_traits(session, profile_id=profile_id, traits=traits, now=utcnow())


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    await session.execute(
        update(SurveyResponse).where(SurveyResponse.profile_id == from_).values(profile_id=into)
    )
    await update_last_answers(session, profile_id=into)


async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
    await session.execute(delete(SurveyResponse).where(SurveyResponse.profile_id.in_(profile_ids)))


def score_summary(survey: str, counts: dict[int, int]) -> dict[str, Any]:
    """Responses, mean and the headline score (CSAT % satisfied, or NPS) of a score histogram."""
    total = sum(counts.values())
    out: dict[str, Any] = {"responses": total, "mean": None, "score": None}
    if not total:
        return out
    out["mean"] = round(sum(s * c for s, c in counts.items()) / total, 4)
    if survey == "csat":
        satisfied = sum(c for s, c in counts.items() if s >= 4)
        out["score"] = round(100 * satisfied / total, 2)
        out["satisfied"] = satisfied
    else:
        promoters = sum(c for s, c in counts.items() if s >= 9)
        detractors = sum(c for s, c in counts.items() if s <= 6)
        out["score"] = round(100 * (promoters - detractors) / total, 2)
        out.update(promoters=promoters, passives=total - promoters - detractors)
        out["detractors"] = detractors
    return out


async def results(
    session: AsyncSession,
    *,
    survey: str,
    start: datetime,
    end: datetime,
    by: Dimension | None = None,
    period: Period = "month",
) -> dict[str, Any]:
    """The survey's overall score in [start, end) and, with ``by``, one row per group."""
    if survey not in SCALES:
        raise ValueError("survey must be csat or nps")
    where = (
        SurveyResponse.survey == survey,
        SurveyResponse.answered_at >= start,
        SurveyResponse.answered_at < end,
    )
    if by == "period":
        key: Any = day_number_sql(session, SurveyResponse.answered_at)
    elif by is not None:
        key = _COLUMNS[by]
    else:
        key = None
    columns = [SurveyResponse.score, func.count()]
    group = [SurveyResponse.score]
    if key is not None:
        columns.insert(0, key)
        group.insert(0, key)
    rows = (await session.execute(select(*columns).where(*where).group_by(*group))).all()
    overall: dict[int, int] = defaultdict(int)
    groups: dict[Any, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        *head, score, count = row
        overall[score] += count
        if key is not None:
            group_key = head[0]
            if by == "period":
                group_key = period_of_day(int(group_key), period)
            groups[group_key][score] += count
    out: dict[str, Any] = {"survey": survey, **score_summary(survey, overall)}
    if by is not None:
        ordered = sorted(groups, key=lambda k: (k is None, k))
        out["by"] = by
        out["groups"] = [
            {
                "group": bucket_label(k, period) if by == "period" else k,
                **score_summary(survey, groups[k]),
            }
            for k in ordered
        ]
    return out
