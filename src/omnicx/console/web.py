"""The console's plumbing: templates, the signed session cookie, CSRF, and who may see a page.

The session is one cookie, ``omnicx_console``, signed (not encrypted) with the secret key by
itsdangerous, holding the user id and the session's CSRF token, and valid for
``SESSION_HOURS``. The user is read again on every request, so a deleted user is out at once and
a changed role applies on the next click. Every POST carries the CSRF token (a hidden ``csrf``
field, or an ``X-CSRF-Token`` header from the console's own script) and is refused without it;
the cookie is ``SameSite=Lax`` and ``HttpOnly`` on top of that.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection

from omnicx.auth import users
from omnicx.auth.service import Role, Staff
from omnicx.db import Database

COOKIE = "omnicx_console"
SESSION_HOURS = 12
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

ALL_ROLES = frozenset(Role)
READ_ANALYTICS = frozenset({Role.admin, Role.marketer, Role.analyst})


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str
    roles: frozenset[Role]


# The menu, in the order people use it; a page's roles are the same set its route checks.
NAV = (
    NavItem("/console/customers", "Customers", ALL_ROLES),
    NavItem("/console/inbox", "Inbox", frozenset({Role.admin, Role.agent})),
    NavItem("/console/store", "Store", frozenset({Role.admin, Role.agent, Role.store_associate})),
    NavItem(
        "/console/segments",
        "Segments",
        frozenset({Role.admin, Role.marketer, Role.analyst, Role.agent}),
    ),
    NavItem("/console/messages", "Messages", frozenset({Role.admin, Role.marketer, Role.analyst})),
    NavItem(
        "/console/journeys",
        "Journeys",
        frozenset({Role.admin, Role.marketer, Role.analyst, Role.agent}),
    ),
    NavItem(
        "/console/experiments", "Experiments", frozenset({Role.admin, Role.marketer, Role.analyst})
    ),
    NavItem(
        "/console/dashboard", "Dashboard", frozenset({Role.admin, Role.marketer, Role.analyst})
    ),
)
ROLES_OF = {item.href: item.roles for item in NAV}


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the login page."""


class ConsoleError(Exception):
    """A page-level refusal (403, 404, 400) shown as a page, not as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Session:
    staff: Staff
    email: str
    csrf: str


def _serializer(request: HTTPConnection) -> URLSafeTimedSerializer:
    secret = request.app.state.settings.secret_key.get_secret_value()
    return URLSafeTimedSerializer(secret, salt="omnicx.console.session")


def start_session(request: Request, response: Response, user_id: int) -> None:
    """Set a fresh session cookie (a new CSRF token too, so a login cannot be fixed in advance)."""
    value = _serializer(request).dumps({"u": user_id, "c": secrets.token_urlsafe(24)})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/console",
    )


def end_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console")


def _cookie(request: HTTPConnection) -> dict[str, Any] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request).loads(raw, max_age=SESSION_HOURS * 3600)
    except BadSignature:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("u"), int) else None


async def session_of(request: HTTPConnection) -> Session | None:
    """The session of a request or WebSocket, or None."""
    data = _cookie(request)
    if data is None:
        return None
    db: Database = request.app.state.db
    async with db.session() as session:
        user = await users.get(session, user_id=data["u"])
    if user is None:
        return None
    return Session(users.staff_of(user), user.email, str(data.get("c", "")))


async def current_session(request: Request) -> Session:
    session = await session_of(request)
    if session is None:
        raise LoginRequired
    return session


CurrentSession = Annotated[Session, Depends(current_session)]


def allow(session: Session, roles: frozenset[Role] | set[Role]) -> Staff:
    """The staff, if their role may see this; a 403 page otherwise."""
    if session.staff.role not in roles:
        raise ConsoleError(
            403, f"A {session.staff.role.value.replace('_', ' ')} may not open this."
        )
    return session.staff


def page_roles(href: str) -> Callable[[Session], Awaitable[Staff]]:
    roles = ROLES_OF[href]

    async def dependency(session: CurrentSession) -> Staff:
        return allow(session, roles)

    return dependency


def check_csrf(session: Session, token: str | None) -> None:
    if not token or not session.csrf or not hmac.compare_digest(token, session.csrf):
        raise ConsoleError(403, "The form expired or did not come from the console; try again.")


async def csrf_form(request: Request, session: CurrentSession) -> FormData:
    """The POSTed form, once its CSRF token is checked (header for script calls)."""
    form = await request.form()
    token = request.headers.get("x-csrf-token") or form.get("csrf")
    check_csrf(session, token if isinstance(token, str) else None)
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def render(
    request: Request,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    nav = [i for i in NAV if session is not None and session.staff.role in i.roles]
    context.update(
        request=request,
        session=session,
        staff=session.staff if session else None,
        nav=nav,
        path=request.url.path,
        notice=request.query_params.get("notice"),
        problem=request.query_params.get("problem"),
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def back(url: str, *, notice: str | None = None, problem: str | None = None) -> RedirectResponse:
    """Post/redirect/get, carrying a one-line message for the next page."""
    sep = "&" if "?" in url else "?"
    if notice:
        url += f"{sep}notice={quote(notice)}"
    elif problem:
        url += f"{sep}problem={quote(problem)}"
    return RedirectResponse(url, status_code=303)
