"""FastAPI dependencies that authenticate staff and enforce roles.

Every staff route declares its roles with :func:`require`; the roles are kept on the dependency
so the role matrix can be read back from the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from omnicx.auth.service import Role, Staff, get_staff_by_token
from omnicx.db import Database
from omnicx.errors import ApiError

StaffDependency = Callable[[Request], Awaitable[Staff]]

READERS = (Role.admin, Role.marketer, Role.agent, Role.store_associate, Role.analyst)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "a bearer token is required")
    return token.strip()


def require(*roles: Role) -> StaffDependency:
    """A dependency admitting a valid staff token whose role is one of ``roles``."""
    allowed = frozenset(roles)

    async def dependency(request: Request) -> Staff:
        token = bearer_token(request)
        db: Database = request.app.state.db
        async with db.session() as session:
            staff = await get_staff_by_token(session, token=token)
        if staff is None:
            raise ApiError(401, "unauthenticated", "the token is unknown or revoked")
        if staff.role not in allowed:
            raise ApiError(403, "forbidden", f"role {staff.role.value!r} may not do this")
        return staff

    dependency.roles = allowed  # type: ignore[attr-defined]
    return dependency
