"""Agent inbox: queues and my conversations, then one thread with the customer's 360 beside it
(recent purchases, browsing, wishlist, open pickups), the bot's transcript and what it collected
at handoff, reply, internal notes, canned responses, assign and resolve.

Everything goes through the conversations API's handlers in-process with the agent as caller.
Live updates: the thread and the list re-fetch themselves when ``/console/ws`` (the session's
WebSocket, fed by the conversations hub, so on PostgreSQL by LISTEN/NOTIFY across processes)
says their conversation changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from omnicx.auth.service import Role, Staff
from omnicx.console import conversations_view
from omnicx.console.pages.customers import display_name, profile_360
from omnicx.console.web import (
    ConsoleError,
    CsrfForm,
    CurrentSession,
    back,
    field,
    page_roles,
    render,
    session_of,
)
from omnicx.conversations import live, sockets
from omnicx.conversations import router as api
from omnicx.conversations.schemas import AssignRequest, ResolveRequest, StaffMessageCreate
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.profiles import service as profiles
from omnicx.profiles.record import rules_from

router = APIRouter()
Agent = Annotated[Staff, Depends(page_roles("/console/inbox"))]

VIEWS = {
    "mine": ("Mine", "assigned"),
    "queue": ("Queue", "queued"),
    "bot": ("With the bot", "bot"),
    "open": ("All open", "bot,queued,assigned"),
    "resolved": ("Resolved", "resolved"),
}


async def _list(db: Database, staff: Staff, view: str) -> list[dict[str, Any]]:
    """The view's conversations, each with the customer's display name."""
    _label, status = VIEWS[view]
    assignee = staff.name if view == "mine" else None
    page = await api.list_conversations(
        db, staff, status=status, queue=None, assignee=assignee, store=None, before=None, limit=50
    )
    rules = rules_from(db.settings)
    out = []
    async with db.session() as session:
        for c in page.items:
            profile = await profiles.get_by_external_id(
                session, external_id=c.profile_id, rules=rules
            )
            name = display_name(profile.traits, c.profile_id) if profile else c.profile_id
            out.append({**c.model_dump(), "name": name})
    return out


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(
    request: Request,
    session: CurrentSession,
    staff: Agent,
    view: Annotated[str, Query(pattern="^(mine|queue|bot|open|resolved)$")] = "open",
) -> HTMLResponse:
    """Queues and my conversations."""
    db: Database = request.app.state.db
    items = await _list(db, staff, view)
    return render(request, "inbox.html", session, view=view, views=VIEWS, items=items)


@router.get("/inbox/list", response_class=HTMLResponse)
async def inbox_list(
    request: Request,
    session: CurrentSession,
    staff: Agent,
    view: Annotated[str, Query(pattern="^(mine|queue|bot|open|resolved)$")] = "open",
) -> HTMLResponse:
    """The list alone, for live refresh."""
    db: Database = request.app.state.db
    items = await _list(db, staff, view)
    return render(request, "_inbox_list.html", session, view=view, items=items)


async def _conversation(db: Database, staff: Staff, conversation_id: int) -> Any:
    try:
        return await api.get_conversation(db, staff, conversation_id)
    except ApiError as exc:
        raise ConsoleError(exc.status, exc.message) from exc


@router.get("/inbox/{conversation_id}", response_class=HTMLResponse)
async def conversation_page(
    request: Request, session: CurrentSession, staff: Agent, conversation_id: int
) -> HTMLResponse:
    """One thread with the customer's 360 beside it."""
    db: Database = request.app.state.db
    conversation = await _conversation(db, staff, conversation_id)
    messages = await conversations_view.thread(db, staff, conversation_id)
    customer = await profile_360(db, staff, conversation.profile_id) or {}
    customer.pop("messages", None)  # marketing messages; this page's are the thread's
    canned = await api.list_canned(db, staff)
    return render(
        request,
        "conversation.html",
        session,
        conversation=conversation,
        messages=messages,
        canned=canned,
        name=display_name(customer["profile"].traits, conversation.profile_id)
        if customer
        else conversation.profile_id,
        **customer,
    )


@router.get("/inbox/{conversation_id}/thread", response_class=HTMLResponse)
async def thread_fragment(
    request: Request, session: CurrentSession, staff: Agent, conversation_id: int
) -> HTMLResponse:
    """The thread alone, for live refresh."""
    db: Database = request.app.state.db
    conversation = await _conversation(db, staff, conversation_id)
    messages = await conversations_view.thread(db, staff, conversation_id)
    return render(request, "_thread.html", session, conversation=conversation, messages=messages)


@router.post("/inbox/{conversation_id}/reply")
async def reply(request: Request, staff: Agent, conversation_id: int, form: CsrfForm) -> Response:
    """Reply to the customer, or add an internal note; a canned response may stand in."""
    db: Database = request.app.state.db
    url = f"/console/inbox/{conversation_id}"
    canned = field(form, "canned") or None
    try:
        body = StaffMessageCreate(
            body=None if canned else (field(form, "body") or None),
            canned=canned,
            internal=field(form, "internal") == "on",
        )
        await api.post_message(db, request.app.state.hooks, staff, conversation_id, body)
    except ValidationError:
        return back(url, problem="Write a message or pick a canned response.")
    except ApiError as exc:
        return back(url, problem=exc.message)
    return back(url, notice="Note added." if body.internal else "Reply sent.")


@router.post("/inbox/{conversation_id}/assign")
async def assign(request: Request, staff: Agent, conversation_id: int, form: CsrfForm) -> Response:
    """Take the conversation (or give it to the agent named)."""
    db: Database = request.app.state.db
    url = f"/console/inbox/{conversation_id}"
    agent = field(form, "agent") or staff.name
    try:
        await api.assign(
            db, request.app.state.hooks, staff, conversation_id, AssignRequest(agent=agent)
        )
    except ApiError as exc:
        return back(url, problem=exc.message)
    return back(url, notice=f"Assigned to {agent}.")


@router.post("/inbox/{conversation_id}/resolve")
async def resolve(request: Request, staff: Agent, conversation_id: int, form: CsrfForm) -> Response:
    """Resolve; the customer is asked for a CSAT score on her channel."""
    db: Database = request.app.state.db
    try:
        await api.resolve(
            db,
            request.app.state.hooks,
            staff,
            conversation_id,
            ResolveRequest(csat=field(form, "csat", "on") == "on"),
        )
    except ApiError as exc:
        return back(f"/console/inbox/{conversation_id}", problem=exc.message)
    return back("/console/inbox?view=mine", notice=f"Conversation {conversation_id} resolved.")


@router.websocket("/ws")
async def live_updates(ws: WebSocket) -> None:
    """Tell the console's open pages which conversation changed (they re-fetch it)."""
    session = await session_of(ws)
    if session is None or session.staff.role not in (Role.admin, Role.agent):
        await ws.close(code=4401)
        return
    await ws.accept()
    db: Database = ws.app.state.db
    hub = live.hub_for(db)
    hub.loader = sockets.load_message
    wanted = ws.query_params.get("conversation")
    sub = await hub.subscribe(db, [live.ALL], customer=False)
    receiver = asyncio.create_task(ws.receive_text())
    try:
        while True:
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({receiver, getter}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                receiver.result()  # raises WebSocketDisconnect when the page closed
                receiver = asyncio.create_task(ws.receive_text())
                continue
            item = getter.result()
            cid = item.get("conversation_id")
            if wanted and str(cid) != wanted:
                continue
            await ws.send_json({"type": item.get("type"), "conversation_id": cid})
    except WebSocketDisconnect:
        pass
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver
        await hub.unsubscribe(sub)
