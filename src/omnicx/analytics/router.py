"""``/api/analytics``: CLV, churn, retention, CSAT/NPS, experiments, attribution, paths, funnels.

Read by analysts, marketers and admins. Date ranges are ``start`` (inclusive) and ``end``
(exclusive), ISO dates or times (UTC when no offset is given); each report has a default range.
Every table can be downloaded with ``format=csv`` (list cells become numbered columns).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from omnicx.analytics import attribution, experiments, retention, service, stats, surveys
from omnicx.analytics.periods import Period
from omnicx.analytics.schemas import (
    AbTestRequest,
    AbTestResult,
    ClvSummary,
    ComputedTraitsRead,
    Model,
    Table,
)
from omnicx.auth.deps import require
from omnicx.auth.service import Role, Staff
from omnicx.db import Db, utcnow
from omnicx.errors import ApiError
from omnicx.profiles.router import find_profile

router = APIRouter(prefix="/api/analytics", tags=["analytics"])

Reader = Annotated[Staff, Depends(require(Role.analyst, Role.marketer, Role.admin))]
Start = Annotated[datetime | None, Query(description="From (inclusive), ISO date or time.")]
End = Annotated[datetime | None, Query(description="Until (exclusive); default now.")]
Format = Annotated[Literal["json", "csv"], Query(description="csv downloads the rows.")]
PeriodQ = Annotated[Period, Query(description="day, week, month or quarter (UTC).")]


def date_range(
    start: datetime | None, end: datetime | None, days: int
) -> tuple[datetime, datetime]:
    def aware(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    until = aware(end) if end else utcnow()
    since = aware(start) if start else until - timedelta(days=days)
    if since >= until:
        raise ApiError(400, "invalid_range", "start must be before end")
    if until - since > timedelta(days=3660):
        raise ApiError(400, "invalid_range", "a range may span at most ten years")
    return since, until


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                flat[f"{name}_{i}"] = "" if item is None else item
        else:
            flat[name] = "" if value is None else value
    return flat


def respond(table: Table, fmt: str, filename: str) -> Table | Response:
    if fmt == "json":
        return table
    rows = [_flatten(r) for r in table.rows]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


@router.get("/clv", response_model=ClvSummary)
async def clv_summary(db: Db, _staff: Reader) -> ClvSummary:
    """The latest CLV refresh: when, how many customers, the fitted model parameters."""
    async with db.session() as session:
        run = await service.latest_run(session)
    return ClvSummary(last_run=run.report if run else None)


@router.get("/profiles/{external_id}/traits", response_model=ComputedTraitsRead)
async def profile_traits(db: Db, _staff: Reader, external_id: str) -> ComputedTraitsRead:
    """A profile's computed traits: CLV, P(alive), expected purchases, RFM, last CSAT/NPS."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        traits = await service.computed_traits(session, profile_id=profile.id)
    return ComputedTraitsRead(profile_id=profile.id, traits=traits)


@router.get("/churn", response_model=Table)
async def churn(
    db: Db,
    _staff: Reader,
    start: Start = None,
    end: End = None,
    period: PeriodQ = "month",
    format: Format = "json",
) -> Table | Response:
    """Churn per period: customers active in the previous period who did not buy in this one."""
    since, until = date_range(start, end, 365)
    async with db.session() as session:
        rows = await retention.churn(session, period=period, start=since, end=until, now=utcnow())
    params = {"start": since, "end": until, "period": period}
    return respond(Table(params=params, rows=rows), format, "churn")


@router.get("/retention", response_model=Table)
async def cohort_retention(
    db: Db,
    _staff: Reader,
    start: Start = None,
    end: End = None,
    period: PeriodQ = "month",
    cohort: Annotated[retention.Cohort, Query()] = "first_order",
    periods: Annotated[int, Query(ge=1, le=60)] = 12,
    format: Format = "json",
) -> Table | Response:
    """Cohort retention table; periods not reached yet are empty (null), not 0."""
    since, until = date_range(start, end, 365)
    async with db.session() as session:
        rows = await retention.cohorts(
            session,
            period=period,
            start=since,
            end=until,
            now=utcnow(),
            cohort=cohort,
            periods=periods,
        )
    params = {"start": since, "end": until, "period": period, "cohort": cohort, "periods": periods}
    return respond(Table(params=params, rows=rows), format, "retention")


@router.get("/surveys/{survey}", response_model=Table)
async def survey_results(
    db: Db,
    _staff: Reader,
    survey: Literal["csat", "nps"],
    start: Start = None,
    end: End = None,
    by: Annotated[surveys.Dimension | None, Query(description="Breakdown.")] = None,
    period: PeriodQ = "month",
    format: Format = "json",
) -> Table | Response:
    """CSAT (% of 4-5) or NPS (% promoters − % detractors), overall and by a breakdown."""
    since, until = date_range(start, end, 90)
    async with db.session() as session:
        result = await surveys.results(
            session, survey=survey, start=since, end=until, by=by, period=period
        )
    rows = result.pop("groups", [])
    params = {"start": since, "end": until, "survey": survey, "by": by, "period": period}
    return respond(Table(params=params, rows=rows, summary=result), format, f"{survey}")


@router.get("/experiments/{experiment_id}", response_model=Table)
async def experiment(
    db: Db,
    _staff: Reader,
    experiment_id: str,
    metric: Annotated[str, Query(max_length=200, description="Conversion event.")] = (
        "Order Completed"
    ),
    window_days: Annotated[float, Query(gt=0, le=365)] = 14,
    control: Annotated[str | None, Query(max_length=200)] = None,
    sequential: bool = False,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Table | Response:
    """Per variant: exposures, conversions, rate, revenue per customer, uplift vs control."""
    async with db.session() as session:
        result = await experiments.results(
            session,
            experiment_id=experiment_id,
            metric_event=metric,
            window_days=window_days,
            start=start,
            end=end,
            control=control,
            sequential=sequential,
        )
    rows = result.pop("variants")
    return respond(
        Table(params={"experiment_id": experiment_id}, rows=rows, summary=result),
        format,
        "experiment",
    )


@router.post("/abtest", response_model=AbTestResult)
async def abtest(_staff: Reader, body: AbTestRequest) -> AbTestResult:
    """Compare two conversion counts (ad hoc): uplift, p-value, interval, chance to win, SRM."""
    a, b = body.control, body.treatment
    result = stats.compare(
        stats.Moments.proportion(a.exposures, a.conversions),
        stats.Moments.proportion(b.exposures, b.conversions),
        alpha=body.alpha,
        sequential=body.sequential,
    )
    srm = stats.srm_p_value([a.exposures, b.exposures])
    return AbTestResult(
        control_rate=a.conversions / a.exposures if a.exposures else None,
        treatment_rate=b.conversions / b.exposures if b.exposures else None,
        uplift=result.uplift,
        stddev=result.stddev,
        p_value=result.p_value,
        ci=result.ci,
        chance_to_win=result.chance_to_win,
        sequential=result.sequential,
        note=result.note,
        srm_p_value=srm,
        warnings=[stats.SRM_WARNING] if srm < stats.SRM_THRESHOLD else [],
    )


@router.get("/attribution", response_model=Table)
async def order_attribution(
    db: Db,
    _staff: Reader,
    model: Annotated[Model, Query(description="last, first or position (40/20/40).")] = "last",
    by: Annotated[Literal["channel", "journey"], Query()] = "channel",
    window_days: Annotated[float, Query(gt=0, le=90)] = 7,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Table | Response:
    """Orders and revenue credited to channels or journeys touched before the order."""
    since, until = date_range(start, end, 30)
    async with db.session() as session:
        result = await attribution.attribution(
            session,
            start=since,
            end=until,
            model=model,
            window_days=window_days,
            touch_events=db.settings.analytics_touch_events,
        )
    rows = result.pop("channels" if by == "channel" else "journeys")
    result.pop("journeys" if by == "channel" else "channels")
    params = {"start": since, "end": until, "model": model, "by": by, "window_days": window_days}
    return respond(Table(params=params, rows=rows, summary=result), format, "attribution")


@router.get("/paths", response_model=Table)
async def common_paths(
    db: Db,
    _staff: Reader,
    before: Annotated[attribution.Anchor, Query(description="order or abandonment")] = "order",
    steps: Annotated[int, Query(ge=1, le=10)] = 4,
    window_days: Annotated[float, Query(gt=0, le=90)] = 7,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Table | Response:
    """The most common sequences of touchpoints (channel:event) before an order or abandonment."""
    since, until = date_range(start, end, 30)
    async with db.session() as session:
        result = await attribution.paths(
            session,
            anchor=before,
            start=since,
            end=until,
            steps=steps,
            window_days=window_days,
            limit=limit,
        )
    rows = result.pop("paths")
    params = {"start": since, "end": until, "before": before, "steps": steps}
    return respond(Table(params=params, rows=rows, summary=result), format, "paths")


@router.get("/journeys/{journey_id}/funnel", response_model=Table)
async def journey_funnel(
    db: Db,
    _staff: Reader,
    journey_id: str,
    start: Start = None,
    end: End = None,
    format: Format = "json",
) -> Table | Response:
    """Customers reaching each node of a journey, and the drop-off from the node before."""
    since, until = date_range(start, end, 90)
    async with db.session() as session:
        rows = await attribution.journey_funnel(
            session, journey_id=journey_id, start=since, end=until
        )
    params = {"start": since, "end": until, "journey_id": journey_id}
    return respond(Table(params=params, rows=rows), format, "funnel")
