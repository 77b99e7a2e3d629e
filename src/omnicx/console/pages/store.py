"""Store console: today's pickups by state, verify a pickup code, mark ready or collected, and
the customer's wishlist and recent conversation beside the order.

Moves go through the commerce API's own handler in-process, with the associate as the caller:
the same lifecycle rules (409 for an illegal move), the same code check, and the same rule that
an associate acts on its own store only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from omnicx.auth.service import Role, Staff
from omnicx.commerce import service as commerce
from omnicx.commerce.router import get_order, store_pickups, transition_pickup
from omnicx.commerce.schemas import TransitionCreate
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
)
from omnicx.db import Database, utcnow
from omnicx.errors import ApiError

router = APIRouter()
Clerk = Annotated[Staff, Depends(page_roles("/console/store"))]

OPEN = ("placed", "picking", "ready_for_pickup")
DONE = ("collected", "partially_collected", "expired", "cancelled")
NEXT_STEP = {"placed": "picking", "picking": "ready_for_pickup"}


async def _store_of(db: Database, staff: Staff, store: str) -> tuple[str, list[Any]]:
    async with db.session() as session:
        stores = await commerce.list_stores(session)
    if staff.role is Role.store_associate:
        assert staff.store_id is not None
        if store and store != staff.store_id:
            raise ConsoleError(403, "A store associate sees only their own store.")
        return staff.store_id, [s for s in stores if s.id == staff.store_id]
    return store or (stores[0].id if stores else ""), stores


@router.get("/store", response_class=HTMLResponse)
async def store_console(
    request: Request,
    session: CurrentSession,
    staff: Clerk,
    store: Annotated[str, Query(max_length=100)] = "",
    code: Annotated[str, Query(max_length=12)] = "",
) -> HTMLResponse:
    """Today's pickups of one store by state, and the code check."""
    db: Database = request.app.state.db
    store_id, stores = await _store_of(db, staff, store)
    by_state: dict[str, list[Any]] = {s: [] for s in (*OPEN, "done today")}
    match = None
    if store_id:
        pickups = (await store_pickups(db, staff, store_id, None, 500)).items
        since = utcnow() - timedelta(hours=24)
        for p in pickups:
            if p.status in OPEN:
                by_state[p.status].append(p)
            elif p.transitions and p.transitions[-1].at >= since:
                by_state["done today"].append(p)
        wanted = code.strip().upper()
        if wanted:
            match = next((p for p in pickups if p.code and p.code.upper() == wanted), None)
    return render(
        request,
        "store.html",
        session,
        store_id=store_id,
        stores=stores,
        by_state=by_state,
        code=code,
        match=match,
        next_step=NEXT_STEP,
    )


@router.get("/store/orders/{order_id}", response_class=HTMLResponse)
async def store_order(
    request: Request,
    session: CurrentSession,
    staff: Clerk,
    order_id: str,
    code: Annotated[str, Query(max_length=12)] = "",
) -> HTMLResponse:
    """One pickup with the customer beside it: wishlist, purchases, recent conversation."""
    db: Database = request.app.state.db
    try:
        order = await get_order(db, staff, order_id)
    except ApiError as exc:
        raise ConsoleError(exc.status, exc.message) from exc
    customer = await profile_360(db, staff, order.profile_id) if order.profile_id else None
    verified = None
    if code.strip() and order.pickup is not None:
        verified = (order.pickup.code or "").upper() == code.strip().upper()
    return render(
        request,
        "store_order.html",
        session,
        order=order,
        code=code,
        verified=verified,
        next_step=NEXT_STEP,
        name=display_name(customer["profile"].traits, order.profile_id or "") if customer else "",
        **(customer or {}),
    )


@router.post("/store/orders/{order_id}/move")
async def move(request: Request, staff: Clerk, order_id: str, form: CsrfForm) -> Response:
    """Mark picking, ready or collected (with the code, or an override and its reason)."""
    db: Database = request.app.state.db
    to = field(form, "to")
    url = f"/console/store/orders/{order_id}"
    try:
        body = TransitionCreate.model_validate(
            {
                "to": to,
                "code": field(form, "code") or None,
                "override_reason": field(form, "override_reason") or None,
            }
        )
        await transition_pickup(db, request.app.state.hooks, staff, order_id, body)
    except ApiError as exc:
        return back(url, problem=exc.message)
    except ValueError:
        return back(url, problem=f"not a pickup state: {to!r}")
    return back(url, notice=f"Order {order_id}: {to.replace('_', ' ')}.")


@router.post("/store/orders/{order_id}/note")
async def note(request: Request, staff: Clerk, order_id: str, form: CsrfForm) -> Response:
    """A note that joins the customer's conversation thread."""
    db: Database = request.app.state.db
    url = f"/console/store/orders/{order_id}"
    try:
        order = await get_order(db, staff, order_id)
    except ApiError as exc:
        raise ConsoleError(exc.status, exc.message) from exc
    text = field(form, "body")
    if not text or not order.profile_id:
        return back(url, problem="Write the note first.")
    try:
        await conversations_view.add_note(
            db, request.app.state.hooks, staff, order.profile_id, text
        )
    except ApiError as exc:
        return back(url, problem=exc.message)
    return back(url, notice="Note added to the customer's thread.")
