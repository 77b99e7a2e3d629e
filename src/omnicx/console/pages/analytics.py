"""The analytics dashboard and the experiments page.

The dashboard shows, for the last year unless said otherwise: the distribution of historical CLV
(margin × net revenue per customer), the first-order retention cohorts as a heat map, CSAT and
NPS by month, the channel mix (the channels of the last four touchpoints before each order of
the last 30 days, from the paths report), journey funnels (customers reaching each node) and
attribution (revenue credited to journeys, last touch). The numbers come from the analytics
API's handlers and services, so they match what ``/api/analytics`` answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from omnicx.analytics import attribution, experiments
from omnicx.analytics import service as analytics
from omnicx.analytics.router import cohort_retention, date_range, order_attribution, survey_results
from omnicx.analytics.schemas import Table
from omnicx.auth.service import Staff
from omnicx.console import charts
from omnicx.console.web import CurrentSession, page_roles, render
from omnicx.db import Database, utcnow
from omnicx.errors import ApiError
from omnicx.journeys import service as journeys
from omnicx.journeys.definition import Split

router = APIRouter()
Analyst = Annotated[Staff, Depends(page_roles("/console/dashboard"))]


def _table(result: Any) -> Table:
    assert isinstance(result, Table)  # format=json always answers a Table
    return result


async def _clv_chart(db: Database) -> tuple[Any, dict[str, Any]]:
    async with db.session() as session:
        customers = await analytics.load_customers(session, now=utcnow())
        run = await analytics.latest_run(session)
    values = [float(v) * db.settings.analytics_margin for v in customers.revenue]
    labels, counts = charts.histogram(values)
    summary = {
        "customers": len(values),
        "mean": sum(values) / len(values) if values else None,
        "last_refresh": run.report.get("computed_at") if run else None,
    }
    return charts.bars("Customers by historical CLV", labels, counts, unit=""), summary


async def _survey_chart(db: Database, staff: Staff) -> tuple[Any, dict[str, Any]]:
    since, until = date_range(None, None, 365)
    series: dict[str, dict[str, float | None]] = {}
    summary: dict[str, Any] = {}
    surveys: tuple[Literal["csat"], Literal["nps"]] = ("csat", "nps")
    for survey in surveys:
        table = _table(
            await survey_results(
                db, staff, survey, start=since, end=until, by="period", period="month"
            )
        )
        series[survey.upper()] = {r["group"]: r["score"] for r in table.rows}
        summary[survey] = table.summary
    months = sorted({m for s in series.values() for m in s})
    chart = charts.lines(
        "CSAT (% satisfied) and NPS by month",
        months,
        {name: [s.get(m) for m in months] for name, s in series.items()},
        low=-100 if any(v is not None and v < 0 for v in series["NPS"].values()) else 0,
    )
    return chart, summary


async def _channel_mix(db: Database) -> dict[str, float]:
    """Channels of the last touchpoints (up to four) before each order, from the paths report."""
    since, until = date_range(None, None, 30)
    async with db.session() as session:
        result = await attribution.paths(
            session, anchor="order", start=since, end=until, steps=4, window_days=7, limit=200
        )
    mix: dict[str, float] = {}
    for row in result["paths"]:
        for step in row["path"]:
            channel = str(step).split(":", 1)[0]
            mix[channel] = mix.get(channel, 0) + row["count"]
    return mix


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, session: CurrentSession, staff: Analyst) -> HTMLResponse:
    """CLV, retention, satisfaction, channel mix, journey funnels and attribution at a glance."""
    db: Database = request.app.state.db
    clv_chart, clv = await _clv_chart(db)
    retention = _table(
        await cohort_retention(db, staff, period="month", cohort="first_order", periods=12)
    )
    rows = [r for r in retention.rows if r["size"]][-12:]
    heat = charts.heatmap(
        "Retention by first-order month (% of the cohort buying again)",
        [f"{r['cohort']} ({r['size']})" for r in rows],
        [str(i) for i in range(12)],
        [r["retention"] for r in rows],
    )
    survey_chart, surveys = await _survey_chart(db, staff)
    mix = await _channel_mix(db)
    channel_chart = charts.share_bars(
        "Touchpoints before an order, per channel (last 30 days)", list(mix.items())
    )
    by_journey = _table(await order_attribution(db, staff, model="last", by="journey"))
    attribution_chart = charts.share_bars(
        "Revenue credited per journey (last touch)",
        [(r["journey_id"] or "none", r["revenue"]) for r in by_journey.rows],
    )
    funnels = []
    since, until = date_range(None, None, 90)
    async with db.session() as s:
        for journey in await journeys.list_all(s):
            if journey.live_version is None:
                continue
            steps = await attribution.journey_funnel(
                s, journey_id=journey.id, start=since, end=until
            )
            funnels.append(
                (
                    journey.name,
                    charts.funnel(
                        f"Funnel of {journey.name}",
                        [(r["node_id"], float(r["customers"])) for r in steps],
                    ),
                )
            )
    return render(
        request,
        "dashboard.html",
        session,
        clv_chart=clv_chart,
        clv=clv,
        heat=heat,
        survey_chart=survey_chart,
        surveys=surveys,
        channel_chart=channel_chart,
        mix=mix,
        attribution_chart=attribution_chart,
        by_journey=by_journey.rows,
        funnels=funnels,
    )


@router.get("/experiments", response_class=HTMLResponse)
async def experiment_page(
    request: Request,
    session: CurrentSession,
    _staff: Annotated[Staff, Depends(page_roles("/console/experiments"))],
    experiment: Annotated[str, Query(max_length=200)] = "",
    metric: Annotated[str, Query(max_length=200)] = "Order Completed",
    window_days: Annotated[float, Query(gt=0, le=365)] = 14,
) -> HTMLResponse:
    """Every journey split as an experiment: variants with uplift, interval and chance to win."""
    db: Database = request.app.state.db
    known: list[str] = []
    async with db.session() as s:
        for summary in await journeys.list_all(s):
            row = await journeys.get(s, journey_id=summary.id)
            if row is None:
                continue
            try:
                parsed = journeys.check((await journeys.read(s, journey=row)).definition)
            except ApiError:
                continue
            known += [f"{summary.id}:{n.id}" for n in parsed.nodes.values() if isinstance(n, Split)]
        chosen = experiment or (known[0] if known else "")
        result = None
        if chosen:
            result = await experiments.results(
                s, experiment_id=chosen, metric_event=metric, window_days=window_days
            )
    return render(
        request,
        "experiments.html",
        session,
        known=known,
        chosen=chosen,
        metric=metric,
        window_days=window_days,
        result=result,
    )
