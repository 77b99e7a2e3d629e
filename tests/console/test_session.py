"""Console sessions without a browser: a deleted user is out at once, a tampered cookie is no
session, and every page states its roles."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth import users
from omnicx.auth.service import Role
from omnicx.console.web import COOKIE, NAV
from omnicx.db import Database


async def _user(db: Database, email: str, role: Role, store: str | None = None) -> int:
    async def work(session: AsyncSession) -> int:
        user = await users.create(
            session, email=email, password="long enough", role=role, store_id=store
        )
        return user.id

    user_id: int = await db.transaction(work)
    return user_id


async def _login(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/console/login", data={"email": email, "password": "long enough"})
    assert response.status_code == 303, response.text


async def test_deleted_user_is_logged_out_on_the_next_request(
    db: Database, client: httpx.AsyncClient
) -> None:
    user_id = await _user(db, "sam@example.com", Role.store_associate, "oslo-1")
    await _login(client, "sam@example.com")
    assert (await client.get("/console/store")).status_code == 200

    async def delete(session: AsyncSession) -> None:
        user = await users.get(session, user_id=user_id)
        assert user is not None
        await users.delete(session, user=user)

    await db.transaction(delete)
    response = await client.get("/console/store")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/store"


async def test_a_tampered_cookie_is_no_session(db: Database, client: httpx.AsyncClient) -> None:
    await _user(db, "ana@example.com", Role.admin)
    await _login(client, "ana@example.com")
    good = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, good[:-2] + ("AA" if not good.endswith("AA") else "BB"))
    assert (await client.get("/console/customers")).status_code == 303


async def test_each_role_sees_its_pages_and_is_refused_the_others(
    db: Database, client: httpx.AsyncClient
) -> None:
    stores = {Role.store_associate: "oslo-1"}
    for role in Role:
        email = f"{role.value}@example.com"
        await _user(db, email, role, stores.get(role))
        client.cookies.clear()
        await _login(client, email)
        for item in NAV:
            response = await client.get(item.href)
            expected = 200 if role in item.roles else 403
            assert response.status_code == expected, (role, item.href, response.text[:300])
            if expected == 403:
                assert "may not open this" in response.text
