"""Engine, sessions and the column types every package shares.

One :class:`Database` per process. Reads use :meth:`Database.session`; anything that writes uses
:meth:`Database.transaction`, which commits once at the end and retries the whole unit of work
when the database reports a deadlock, a serialisation failure or (SQLite) a busy lock.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a killed process loses nothing committed (the
WAL is in the OS page cache); only a power cut can lose the last transactions. Write transactions
start with ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade, and writers inside
one process queue on an asyncio lock instead of spinning on ``busy_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Path, Query, Request
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from omnicx.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


JSONType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; ``timestamptz`` on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_insert(session: AsyncSession, model: type[Base] | Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database (of a model, or of
    its Core table: a list of rows then goes as one executemany, which SQLAlchemy batches into
    multi-row statements, without the ORM's per-row bookkeeping)."""
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(model)


def utcnow() -> datetime:
    return datetime.now(UTC)


_RETRY_SQLSTATES = {"40P01", "40001", "55P03"}  # deadlock, serialisation, lock not available


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate in _RETRY_SQLSTATES


def json_dumps(value: Any) -> str:
    """JSON columns are written by orjson, several times faster than ``json`` (which took ~8% of
    ingest's CPU); what orjson refuses (non-string keys, integers past 64 bits, datetimes) goes
    to ``json`` as before. Differences: no ASCII escaping, NaN is stored as null."""
    try:
        return orjson.dumps(value, option=_ORJSON_REFUSE).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """orjson, or ``json`` for the NaN and Infinity it wrote before (orjson writes null)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


_ORJSON_REFUSE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.database_url
    codec: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}
    if settings.is_sqlite:
        engine = create_async_engine(url, pool_size=5, max_overflow=10, **codec)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        **codec,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("omnicx_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """The process's engine and its two ways in: read sessions and retried write transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings)
        self.dialect = self.engine.dialect.name
        self._write_engine = self.engine.execution_options(omnicx_write=True)
        self._sqlite_write_lock = asyncio.Lock() if settings.is_sqlite else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    async def transaction(
        self, work: Callable[[AsyncSession], Awaitable[T]], *, attempts: int = 8
    ) -> T:
        """Run ``work`` in one write transaction and commit; retry it whole on lock conflicts."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._run_once(work)
            except DBAPIError as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                log.info("retrying transaction after %s (attempt %d)", exc.orig, attempt)
                await asyncio.sleep(0.005 * 2**attempt)
        raise AssertionError("unreachable")

    async def _run_once(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        if self._sqlite_write_lock is None:
            return await self._commit(work)
        async with self._sqlite_write_lock:
            return await self._commit(work)

    async def _commit(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with AsyncSession(self._write_engine, expire_on_commit=False) as session:
            async with session.begin():
                return await work(session)

    async def dispose(self) -> None:
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(get_database)]

MAX_ROW_ID = 2**63 - 1
# A row id in a URL: out of the 64-bit range it is a 422, not a database error (a 500).
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def row_id(text: str) -> int | None:
    """``text`` as a row id, or ``None`` if it is not one: ASCII digits only (``str.isdigit``
    also takes "³", which ``int`` refuses) and within the 64-bit range."""
    if len(text) > 19 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ROW_ID else None


# A paging cursor (a row id to page before or after) in a query string, bounded the same way.
CursorId = Annotated[int, Query(ge=0, le=MAX_ROW_ID)]
