"""Journeys: the list, and one journey's page with its graph (live counts per node), its stats,
the YAML/JSON editor with validation as you type, and publish / pause / resume / stop.

Changes go through the journeys API's handlers in-process with the console user as caller, so
the same validation, role rules and process-wide catalogue refresh apply.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from omnicx.auth.service import Role, Staff
from omnicx.console.graph import draw
from omnicx.console.pages.marketing import parse_definition, to_yaml
from omnicx.console.web import (
    ConsoleError,
    CsrfForm,
    CurrentSession,
    allow,
    back,
    field,
    page_roles,
    render,
)
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.journeys import router as api
from omnicx.journeys import service as journeys
from omnicx.journeys import stats as journey_stats
from omnicx.journeys.schemas import JourneyWrite

router = APIRouter()
Reader = Annotated[Staff, Depends(page_roles("/console/journeys"))]
WRITERS = frozenset({Role.admin, Role.marketer})


def entry_label(definition: dict[str, Any]) -> str:
    entry = definition.get("entry") or {}
    for key in ("event", "segment", "segment_exited"):
        if entry.get(key):
            verb = {"event": "on", "segment": "joins", "segment_exited": "leaves"}[key]
            return f"{verb} {entry[key]}"
    return "entry"


@router.get("/journeys", response_class=HTMLResponse)
async def journey_list(request: Request, session: CurrentSession, _staff: Reader) -> Any:
    """Every journey with its status and how many customers are in it."""
    db: Database = request.app.state.db
    async with db.session() as s:
        items = await journeys.list_all(s)
    return render(request, "journeys.html", session, items=items)


@router.get("/journeys/{journey_id}", response_class=HTMLResponse)
async def journey_page(
    request: Request, session: CurrentSession, _staff: Reader, journey_id: str
) -> Any:
    """The journey drawn with live counts, its stats and its editor."""
    db: Database = request.app.state.db
    async with db.session() as s:
        row = await journeys.get(s, journey_id=journey_id)
        if row is None:
            raise ConsoleError(404, f"No journey {journey_id!r}.")
        journey = await journeys.read(s, journey=row)
        stats = await journey_stats.journey_stats(s, journey_id=journey_id)
    graph = None
    try:
        graph = draw(
            journeys.check(journey.definition), entry_label(journey.definition), stats.nodes
        )
    except ApiError:
        pass  # a draft that does not parse is shown in the editor with its error
    return render(
        request,
        "journey.html",
        session,
        journey=journey,
        stats=stats,
        graph=graph,
        text=to_yaml(journey.definition),
        can_write=session.staff.role in WRITERS,
    )


@router.post("/journeys/validate")
async def validate(request: Request, _staff: Reader, form: CsrfForm) -> JSONResponse:
    """Check a definition being edited: the error names the node and field."""
    db: Database = request.app.state.db
    try:
        parsed = journeys.check(parse_definition(field(form, "definition")))
        async with db.session() as s:
            await journeys.check_references(s, parsed)
    except ValueError as exc:
        return JSONResponse({"ok": False, "message": str(exc)})
    except ApiError as exc:
        return JSONResponse({"ok": False, "message": exc.message})
    return JSONResponse({"ok": True, "message": f"Valid: {len(parsed.nodes)} nodes."})


@router.post("/journeys/{journey_id}/save")
async def save(request: Request, session: CurrentSession, journey_id: str, form: CsrfForm) -> Any:
    """Save the draft (customers see it once it is published)."""
    staff = allow(session, WRITERS)
    db: Database = request.app.state.db
    url = f"/console/journeys/{journey_id}"
    try:
        body = JourneyWrite.model_validate(
            {
                "name": field(form, "name"),
                "description": field(form, "description"),
                "definition": parse_definition(field(form, "definition")),
            }
        )
        await api.update_journey(db, staff, journey_id, body)
    except ValidationError as exc:
        return back(url, problem="; ".join(e["msg"] for e in exc.errors()))
    except ValueError as exc:
        return back(url, problem=str(exc))
    except ApiError as exc:
        return back(url, problem=exc.message)
    return back(url, notice="Draft saved.")


@router.post("/journeys/{journey_id}/{action}")
async def act(
    request: Request, session: CurrentSession, journey_id: str, action: str, _form: CsrfForm
) -> Response:
    """Publish the draft, pause, resume or stop."""
    staff = allow(session, WRITERS)
    db: Database = request.app.state.db
    url = f"/console/journeys/{journey_id}"
    try:
        if action == "publish":
            result = await api.publish_journey(db, staff, journey_id, None)
            return back(url, notice=f"Published version {result.version}.")
        if action == "pause":
            await api.pause_journey(db, staff, journey_id)
        elif action == "resume":
            await api.resume_journey(db, staff, journey_id)
        elif action == "stop":
            stopped = await api.stop_journey(db, request.app.state.hooks, staff, journey_id)
            return back(url, notice=f"Stopped; {stopped.exited_runs} customers exited.")
        else:
            raise ConsoleError(404, f"No action {action!r}.")
    except ApiError as exc:
        return back(url, problem=exc.message)
    return back(url, notice=f"Journey {action}d.")
