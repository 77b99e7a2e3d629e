"""``omnicx export FILE`` / ``omnicx import installation FILE``: a whole installation as one file.

The file is a gzipped tar: ``manifest.json`` (format, OmniCX version, the schema's migration
heads, each table's row count) and ``tables/<table>.jsonl``, one JSON object a row, for every
table of the schema in dependency order. Datetimes are ISO 8601 in UTC, money and other
decimals are strings, JSON columns are JSON. It moves an installation between machines or from
SQLite to PostgreSQL (the round trip is tested); for backups of a running PostgreSQL prefer
``pg_dump`` (see the README).

Import refuses a file whose migration heads differ from the target database's (run
``omnicx db upgrade`` on both sides to the same version first) and a target that holds any row:
it restores into an empty, migrated database, in one transaction, so a failed import leaves it
empty. On PostgreSQL the id sequences are moved past the imported ids.

Export reads table by table in one read transaction (a consistent snapshot on PostgreSQL; on
SQLite stop the writers, or copy the file with ``sqlite3 .backup``).
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from omnicx import __version__
from omnicx.db import Database
from omnicx.models import Base

FORMAT = 1
CHUNK = 1000
NON_STR = orjson.OPT_NON_STR_KEYS  # JSON columns may hold str subclasses as keys


class TransferError(Exception):
    """The file cannot be imported here; the message says why."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot export {type(value).__name__}")


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


async def _heads(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
    return sorted(rows.scalars())


async def export(
    db: Database, path: Path, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Write every table to ``path``; returns the row count per table."""
    counts: dict[str, int] = {}
    with tarfile.open(path, "w:gz") as tar:
        async with db.engine.connect() as conn:
            if db.dialect == "postgresql":
                await conn.execute(
                    text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                )
            heads = await _heads(conn)
            for table in _tables():
                # A table is spooled to disk first: a tar member's size comes before its data.
                with tempfile.TemporaryFile() as spool:
                    n = 0
                    result = await conn.stream(select(table))
                    async for row in result.mappings():
                        values = {str(k): v for k, v in row.items()}  # keys are quoted_name
                        spool.write(orjson.dumps(values, default=_default, option=NON_STR) + b"\n")
                        n += 1
                    counts[str(table.name)] = n
                    info = tarfile.TarInfo(f"tables/{table.name}.jsonl")
                    info.size = spool.tell()
                    spool.seek(0)
                    tar.addfile(info, spool)
                if progress:
                    progress(table.name, n)
        manifest = {"format": FORMAT, "version": __version__, "migrations": heads, "tables": counts}
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return counts


def _parsers(table: Table) -> dict[str, Callable[[Any], Any]]:
    parsers: dict[str, Callable[[Any], Any]] = {}
    for column in table.columns:
        try:  # a TypeDecorator (UTCDateTime) names its Python type through its impl
            kind = getattr(column.type, "impl", column.type).python_type
        except NotImplementedError:
            continue
        if kind is datetime:
            parsers[column.name] = datetime.fromisoformat
        elif kind is date:
            parsers[column.name] = date.fromisoformat
        elif kind is Decimal:
            parsers[column.name] = Decimal
    return parsers


def _rows(tar: tarfile.TarFile, table: Table) -> Iterator[list[dict[str, Any]]]:
    member = tar.extractfile(f"tables/{table.name}.jsonl")
    if member is None:
        raise TransferError(f"the file has no rows for table {table.name!r}")
    parsers = _parsers(table)
    chunk: list[dict[str, Any]] = []
    for line in member:
        row = orjson.loads(line)
        for name, parse in parsers.items():
            if row.get(name) is not None:
                row[name] = parse(row[name])
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def import_(
    db: Database, path: Path, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Restore ``path`` into this (migrated, empty) database; returns the row count per table."""
    with tarfile.open(path, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise TransferError("not an OmniCX export: no manifest.json")
        manifest = orjson.loads(member.read())
        if manifest.get("format") != FORMAT:
            raise TransferError(f"unknown export format {manifest.get('format')!r}")
        async with db.engine.begin() as conn:
            heads = await _heads(conn)
            if manifest["migrations"] != heads:
                raise TransferError(
                    f"the file's schema is at {manifest['migrations']}, this database at {heads}:"
                    " bring both to the same version (omnicx db upgrade) first"
                )
            for table in _tables():
                if await conn.scalar(select(func.count()).select_from(table)):
                    raise TransferError(
                        f"table {table.name!r} is not empty: import into a new database"
                    )
            counts: dict[str, int] = {}
            for table in _tables():
                n = 0
                for chunk in _rows(tar, table):
                    await conn.execute(table.insert(), chunk)
                    n += len(chunk)
                counts[str(table.name)] = n
                if progress:
                    progress(table.name, n)
            expected = manifest["tables"]
            if counts != {name: expected.get(name, 0) for name in counts}:
                raise TransferError(f"row counts differ from the manifest: {counts} != {expected}")
            if db.dialect == "postgresql":
                await _move_sequences(conn)
    return counts


async def _move_sequences(conn: AsyncConnection) -> None:
    for table in _tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True or (
                column.autoincrement == "auto" and len(table.primary_key.columns) == 1
            ):
                try:
                    if column.type.python_type is not int:
                        continue
                except NotImplementedError:
                    continue
                sequence = await conn.scalar(
                    text("SELECT pg_get_serial_sequence(:t, :c)"),
                    {"t": table.name, "c": column.name},
                )
                if sequence:
                    await conn.execute(
                        text(
                            f"SELECT setval('{sequence}', COALESCE((SELECT MAX({column.name}) "
                            f"FROM {table.name}), 0) + 1, false)"
                        )
                    )
