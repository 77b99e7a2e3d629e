"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

Each backend's database is created and migrated once per session; every test starts from empty
tables. ``OMNICX_TEST_POSTGRES_URL`` points at the server (default: local, user postgres);
``OMNICX_TEST_BACKENDS=sqlite`` narrows a local run, CI always runs both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import migrate
from omnicx.app import create_app
from omnicx.auth.service import Role, SourceKind, create_source, create_token
from omnicx.db import Database
from omnicx.models import Base
from omnicx.settings import Settings

POSTGRES_URL = os.environ.get(
    "OMNICX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = os.environ.get("OMNICX_TEST_BACKENDS", "sqlite,postgresql").split(",")
SECRET = "test-secret-key"


def _pg_admin_dsn() -> str:
    return POSTGRES_URL


def _pg_url_for(name: str) -> str:
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _pg_exec(sql: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database of each backend, for the whole session."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "omnicx.db"
        url = f"sqlite:///{path}"
        migrate.upgrade(Settings(database_url=url, env="test"))
        yield url
        return
    name = f"omnicx_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    url = _pg_url_for(name)
    try:
        migrate.upgrade(Settings(database_url=url, env="test"))
        yield url
    finally:
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, env="test", secret_key=SECRET)


async def truncate(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    await truncate(database)
    yield database
    await database.dispose()


@pytest.fixture
async def app(db: Database) -> FastAPI:
    return create_app(database=db)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://omnicx.test") as c:
        yield c


async def new_write_key(db: Database, name: str = "web", kind: SourceKind = SourceKind.web) -> str:
    async def work(session: AsyncSession) -> str:
        return (await create_source(session, name=name, kind=kind))[1]

    key: str = await db.transaction(work)
    return key


async def new_token(db: Database, role: Role, store_id: str | None = None) -> str:
    async def work(session: AsyncSession) -> str:
        return (
            await create_token(session, name=f"{role.value}-test", role=role, store_id=store_id)
        )[1]

    token: str = await db.transaction(work)
    return token


@pytest.fixture
async def write_key(db: Database) -> str:
    return await new_write_key(db)


@pytest.fixture
async def admin_headers(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
