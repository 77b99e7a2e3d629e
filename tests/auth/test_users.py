"""Staff users: hashed passwords, case-insensitive logins, deletion locks users and tokens out."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth import users
from omnicx.auth.models import User
from omnicx.auth.service import Role, create_token
from omnicx.db import Database
from tests.cli import omnicx


async def _make(db: Database, email: str, role: Role, store: str | None = None) -> int:
    async def work(session: AsyncSession) -> int:
        user = await users.create(
            session, email=email, password="correct horse", role=role, store_id=store
        )
        return user.id

    user_id: int = await db.transaction(work)
    return user_id


async def test_password_is_hashed_and_login_is_case_insensitive(db: Database) -> None:
    await _make(db, " Ana@Example.com ", Role.marketer)
    async with db.session() as session:
        stored = (await session.execute(select(User))).scalar_one()
        assert stored.email == "ana@example.com"
        assert stored.password_hash.startswith("$argon2id$")
        assert "correct horse" not in stored.password_hash
        found = await users.authenticate(session, email="ANA@example.com", password="correct horse")
        assert found is not None and found.role == "marketer"
        assert await users.authenticate(session, email="ana@example.com", password="wrong") is None
        assert await users.authenticate(session, email="bob@example.com", password="x") is None


async def test_bad_users_are_refused(db: Database) -> None:
    await _make(db, "ana@example.com", Role.admin)

    async def duplicate(session: AsyncSession) -> None:
        await users.create(session, email="ANA@example.com", password="12345678", role=Role.agent)

    with pytest.raises(users.UserError, match="already exists"):
        await db.transaction(duplicate)

    async def no_store(session: AsyncSession) -> None:
        await users.create(
            session, email="s@example.com", password="12345678", role=Role.store_associate
        )

    with pytest.raises(users.UserError, match="store"):
        await db.transaction(no_store)

    async def short(session: AsyncSession) -> None:
        await users.create(session, email="t@example.com", password="short", role=Role.agent)

    with pytest.raises(users.UserError, match="at least"):
        await db.transaction(short)
    async with db.session() as session:
        assert [u.email for u in await users.list_all(session)] == ["ana@example.com"]


async def test_deleted_user_cannot_log_in_and_its_tokens_get_401(
    db: Database, client: httpx.AsyncClient
) -> None:
    user_id = await _make(db, "sam@example.com", Role.store_associate, "oslo-1")

    async def token_for_user(session: AsyncSession) -> str:
        return (
            await create_token(
                session, name="sam", role=Role.store_associate, store_id="oslo-1", user_id=user_id
            )
        )[1]

    token = await db.transaction(token_for_user)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/stores/oslo-1/pickups", headers=headers)).status_code == 200
    assert (await client.get("/api/stores/bergen/pickups", headers=headers)).status_code == 403

    async def delete(session: AsyncSession) -> None:
        user = await users.get(session, user_id=user_id)
        assert user is not None
        await users.delete(session, user=user)

    await db.transaction(delete)
    refused = await client.get("/api/stores/oslo-1/pickups", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    async with db.session() as session:
        assert await users.get(session, user_id=user_id) is None
        assert (
            await users.authenticate(session, email="sam@example.com", password="correct horse")
            is None
        )


async def test_user_cli_create_token_delete(
    db: Database, database_url: str, client: httpx.AsyncClient
) -> None:
    made = await omnicx(
        database_url,
        "user",
        "create",
        "lea@example.com",
        "--role",
        "analyst",
        "--password-stdin",
        input="a long password\n",
    )
    assert made.exit_code == 0, made.stderr
    async with db.session() as session:
        assert await users.authenticate(
            session, email="lea@example.com", password="a long password"
        )
    refused = await omnicx(
        database_url, "user", "create", "x@example.com", "--role", "store_associate"
    )
    assert refused.exit_code != 0 and "--store" in refused.stderr
    again = await omnicx(
        database_url,
        "user",
        "create",
        "LEA@example.com",
        "--role",
        "admin",
        "--password-stdin",
        input="another password\n",
    )
    assert again.exit_code == 1 and "already exists" in again.stderr

    made = await omnicx(database_url, "user", "token", "lea@example.com")
    assert made.exit_code == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
    assert (await client.get("/api/analytics/clv", headers=headers)).status_code == 200
    assert (await omnicx(database_url, "user", "delete", "lea@example.com")).exit_code == 0
    assert (await client.get("/api/analytics/clv", headers=headers)).status_code == 401
