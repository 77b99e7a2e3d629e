"""Login, logout and the landing page of each role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth import users
from omnicx.auth.service import Role
from omnicx.console.web import (
    CsrfForm,
    CurrentSession,
    end_session,
    render,
    start_session,
)
from omnicx.db import Database

router = APIRouter()

HOME = {
    Role.admin: "/console/customers",
    Role.marketer: "/console/segments",
    Role.agent: "/console/inbox",
    Role.store_associate: "/console/store",
    Role.analyst: "/console/dashboard",
}


def _safe_next(target: str | None) -> str | None:
    # Only our own pages: an absolute or scheme-relative URL would be an open redirect.
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return None


@router.get("", response_class=HTMLResponse)
async def home(session: CurrentSession) -> RedirectResponse:
    """Each role starts on its main page."""
    return RedirectResponse(HOME[session.staff.role], status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The login form."""
    return render(request, "login.html", None, next=_safe_next(next) or "")


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Check the password and start a session."""
    db: Database = request.app.state.db

    async def work(session: AsyncSession) -> tuple[int, Role] | None:
        # A transaction: a hash made with older parameters is upgraded on login.
        user = await users.authenticate(session, email=email, password=password)
        return (user.id, Role(user.role)) if user else None

    found = await db.transaction(work)
    if found is None:
        return render(
            request,
            "login.html",
            None,
            401,
            next=_safe_next(next) or "",
            email=email,
            error="Wrong email or password.",
        )
    user_id, role = found
    response = RedirectResponse(_safe_next(next) or HOME[role], status_code=303)
    start_session(request, response, user_id)
    return response


@router.post("/logout")
async def logout(_form: CsrfForm) -> RedirectResponse:
    """End the session."""
    response = RedirectResponse("/console/login", status_code=303)
    end_session(response)
    return response
