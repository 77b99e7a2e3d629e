"""Export and import of a whole installation: SQLite → PostgreSQL, every row identical, the
same tokens and write keys work, new rows get fresh ids; the schema version and an empty
target are checked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select, text

from omnicx import migrate
from omnicx.app import create_app
from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.models import Base
from omnicx.ops import transfer
from omnicx.settings import Settings
from tests.cli import invoke
from tests.conftest import SECRET, _pg_exec, _pg_url_for, new_token, new_write_key
from tests.helpers import send_ok


def _settings(url: str) -> Settings:
    return Settings(database_url=url, env="test", secret_key=SECRET, embedded_worker=False)


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    name = f"omnicx_transfer_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}"')
    url = _pg_url_for(name)
    try:
        await asyncio.to_thread(migrate.upgrade, _settings(url))
        yield url
    finally:
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _dump(db: Database) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    async with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(select(table))).mappings().all()
            out[table.name] = sorted(
                orjson.dumps(dict(r), default=str, option=orjson.OPT_SORT_KEYS) for r in rows
            )
    return out


async def _client(db: Database) -> httpx.AsyncClient:
    app = create_app(db.settings, database=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://omnicx.test")


async def test_sqlite_to_postgresql_round_trip(tmp_path: Path, empty_postgres: str) -> None:
    source_url = f"sqlite:///{tmp_path / 'from.db'}"
    await asyncio.to_thread(migrate.upgrade, _settings(source_url))
    source = Database(_settings(source_url))
    target = Database(_settings(empty_postgres))
    try:
        key, token = await new_write_key(source), await new_token(source, Role.admin)
        headers = {"Authorization": f"Bearer {token}"}
        async with await _client(source) as client:
            await send_ok(
                client,
                key,
                "identify",
                userId="ana",
                traits={"email": "ana@example.com", "tier": "gold"},
            )
            await send_ok(
                client,
                key,
                "track",
                userId="ana",
                event="Order Completed",
                properties={
                    "order_id": "O-1",
                    "total": 99.5,
                    "currency": "EUR",
                    "products": [{"product_id": "P-1", "price": 99.5, "quantity": 1}],
                },
            )
            segment = {
                "id": "gold",
                "name": "Gold",
                "definition": {"trait": "tier", "op": "equals", "value": "gold"},
            }
            assert (
                await client.post("/api/segments", json=segment, headers=headers)
            ).status_code == 201
            before = (await client.get("/api/profiles/user_id:ana", headers=headers)).json()
            orders = (await client.get("/api/profiles/user_id:ana/orders", headers=headers)).json()

        path = tmp_path / "omnicx-export.tar.gz"
        counts = await transfer.export(source, path)
        assert counts["events"] == 2 and counts["orders"] == 1
        assert await transfer.import_(target, path) == counts
        assert await _dump(target) == await _dump(source)

        async with await _client(target) as client:
            # The same token and write key work on the new database, and new rows get new ids.
            assert (await client.get("/api/profiles/user_id:ana", headers=headers)).json() == before
            assert (
                await client.get("/api/profiles/user_id:ana/orders", headers=headers)
            ).json() == orders
            await send_ok(client, key, "track", userId="bo", event="Signed Up")
            await new_token(target, Role.analyst)
        async with target.engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM events")) == 3

        with pytest.raises(transfer.TransferError, match="not empty"):
            await transfer.import_(target, path)
    finally:
        await source.dispose()
        await target.dispose()


async def test_a_different_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    await asyncio.to_thread(migrate.upgrade, _settings(url))
    db = Database(_settings(url))
    try:
        path = tmp_path / "x.tar.gz"
        await transfer.export(db, path)
        async with db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = '0001' WHERE version_num = '0011'")
            )
        with pytest.raises(transfer.TransferError, match="same version"):
            await transfer.import_(db, path)
    finally:
        await db.dispose()


def test_cli_export_and_import(tmp_path: Path) -> None:
    first, second = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
    dump = tmp_path / "dump.tar.gz"
    for url in (first, second):
        assert invoke(url, "db", "upgrade").exit_code == 0
    assert invoke(first, "source", "create", "web").exit_code == 0
    exported = invoke(first, "export", dump)
    assert exported.exit_code == 0, exported.output
    imported = invoke(second, "import", "installation", dump)
    assert imported.exit_code == 0, imported.output
    again = invoke(second, "import", "installation", dump)
    assert again.exit_code == 1 and "not empty" in again.stderr
