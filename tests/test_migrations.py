"""The models and the migrations agree (a forgotten migration fails here, as `alembic check`)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from omnicx.db import Database
from omnicx.models import Base


async def test_no_pending_model_changes(db: Database) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as connection:
        changes = await connection.run_sync(diff)
    assert changes == []
