"""Marketer pages: segments (an editor with a live count) and messages (templates previewed per
channel and per customer, and the brand kit).

Definitions are written as YAML or JSON (YAML is a superset, so either parses); the live count
is the segments service's preview, the same query the segment will run once saved.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from omnicx.auth.service import Role, Staff
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
from omnicx.db import Database, utcnow
from omnicx.errors import ApiError
from omnicx.messaging.router import get_brand, list_templates, preview_template
from omnicx.messaging.schemas import PreviewRequest
from omnicx.segments import service as segments
from omnicx.segments.schemas import SegmentCreate, SegmentWrite

router = APIRouter()
SegmentReader = Annotated[Staff, Depends(page_roles("/console/segments"))]
MessageReader = Annotated[Staff, Depends(page_roles("/console/messages"))]
WRITERS = frozenset({Role.admin, Role.marketer})
CHANNELS = ("email", "sms", "push", "webpush", "inapp", "webhook")

EXAMPLE = """# Customers who spent 500 or more in the last year and can get marketing email
and:
  - commerce: total_spent
    op: gte
    value: 500
    within: 365d
  - reachable: email
    topic: marketing
"""


def parse_definition(text: str) -> dict[str, Any]:
    """YAML or JSON text to a definition object, or ValueError saying what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("a definition is an object, e.g. {trait: vip, equals: true}")
    return data


def to_yaml(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100] or "segment"


@router.get("/segments", response_class=HTMLResponse)
async def segment_list(request: Request, session: CurrentSession, _staff: SegmentReader) -> Any:
    """Every segment with its member count."""
    db: Database = request.app.state.db
    async with db.session() as s:
        items = await segments.list_all(s)
    return render(
        request, "segments.html", session, items=items, can_write=session.staff.role in WRITERS
    )


@router.get("/segments/new", response_class=HTMLResponse)
async def segment_new(request: Request, session: CurrentSession, _staff: SegmentReader) -> Any:
    """The editor, with an example definition."""
    allow(session, WRITERS)
    return render(
        request, "segment_edit.html", session, segment=None, text=EXAMPLE, name="", description=""
    )


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
async def segment_edit(
    request: Request, session: CurrentSession, _staff: SegmentReader, segment_id: str
) -> Any:
    """One segment: its definition in the editor, members, and a live count."""
    db: Database = request.app.state.db
    async with db.session() as s:
        row = await segments.get(s, segment_id=segment_id)
        if row is None:
            raise ConsoleError(404, f"No segment {segment_id!r}.")
        segment = await segments.read(s, segment=row)
        members = await segments.members(s, segment_id=segment_id, limit=20, after=None)
    return render(
        request,
        "segment_edit.html",
        session,
        segment=segment,
        text=to_yaml(segment.definition),
        name=segment.name,
        description=segment.description,
        members=members.items,
        can_write=session.staff.role in WRITERS,
    )


@router.post("/segments/count")
async def segment_count(request: Request, _staff: SegmentReader, form: CsrfForm) -> JSONResponse:
    """The live count of a definition being edited (no save)."""
    db: Database = request.app.state.db
    try:
        definition = parse_definition(field(form, "definition"))
        async with db.session() as s:
            result = await segments.preview(s, definition=definition, sample=0, now=utcnow())
    except ValueError as exc:
        return JSONResponse({"ok": False, "message": str(exc)})
    except ApiError as exc:
        return JSONResponse({"ok": False, "message": exc.message})
    noun = "customer" if result.count == 1 else "customers"
    return JSONResponse(
        {"ok": True, "count": result.count, "message": f"{result.count:,} {noun} match now"}
    )


@router.post("/segments/save")
async def segment_save(request: Request, session: CurrentSession, form: CsrfForm) -> Response:
    """Create or update a segment from the editor."""
    allow(session, WRITERS)
    db: Database = request.app.state.db
    segment_id = field(form, "id")
    name = field(form, "name")
    text = field(form, "definition")

    def again(problem: str) -> Response:
        return render(
            request,
            "segment_edit.html",
            session,
            422,
            segment=None,
            text=text,
            name=name,
            description=field(form, "description"),
            error=problem,
        )

    try:
        definition = parse_definition(text)
        write = {"name": name, "description": field(form, "description"), "definition": definition}
        if segment_id:

            async def update(s: Any) -> str:
                row = await segments.get(s, segment_id=segment_id)
                if row is None:
                    raise ApiError(404, "segment_not_found", f"no segment {segment_id!r}")
                await segments.update(s, segment=row, data=SegmentWrite.model_validate(write))
                return segment_id

            saved = await db.transaction(update)
        else:
            data = SegmentCreate.model_validate({**write, "id": slug(name)})

            async def create(s: Any) -> str:
                return (await segments.create(s, data=data)).id

            saved = await db.transaction(create)
    except ValidationError as exc:
        return again("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    except ValueError as exc:
        return again(str(exc))
    except ApiError as exc:
        return again(exc.message)
    return back(f"/console/segments/{saved}", notice="Saved; members are being computed.")


@router.get("/messages", response_class=HTMLResponse)
async def messages(
    request: Request,
    session: CurrentSession,
    staff: MessageReader,
    template: Annotated[str, Query(max_length=200)] = "",
    channel: Annotated[str, Query(max_length=20)] = "",
    to: Annotated[str, Query(max_length=600)] = "",
) -> Any:
    """Templates, the brand kit, and a template previewed per channel for a chosen customer."""
    db: Database = request.app.state.db
    templates = await list_templates(db, staff)
    brand = await get_brand(db, staff)
    chosen = next((t for t in templates if t.name == template), templates[0] if templates else None)
    previews: list[dict[str, Any]] = []
    if chosen is not None:
        shown = [channel] if channel else [c for c in CHANNELS if c in chosen.variants]
        for c in shown:
            try:
                body = PreviewRequest.model_validate({"channel": c, "to": to.strip() or None})
                result = await preview_template(db, staff, chosen.name, body)
                previews.append({"channel": c, "content": result.content})
            except (ApiError, ValidationError) as exc:
                message = exc.message if isinstance(exc, ApiError) else str(exc)
                previews.append({"channel": c, "error": message})
    return render(
        request,
        "messages.html",
        session,
        templates=templates,
        chosen=chosen,
        brand=brand.model_dump(),
        previews=previews,
        channel=channel,
        to=to,
        channels=CHANNELS,
        as_json=lambda v: json.dumps(v, indent=2, default=str),
    )
