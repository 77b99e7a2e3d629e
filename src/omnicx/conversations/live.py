"""Live updates: who is connected, and handing them new messages, typing, assignment, status.

Writers call :func:`emit` inside their transaction; nothing is announced unless it commits.

- SQLite (one process): the events wait in the session and go to this process's
  :class:`Hub` right after the commit.
- PostgreSQL (any number of processes): :func:`emit` runs ``pg_notify`` in the transaction, so
  PostgreSQL delivers it at commit to every process that ``LISTEN``s. The payload is small
  (conversation id, message id, event type, and the few fields of a typing / status event);
  a process receiving a ``message`` event reads that row once and hands it to all its sockets.
  A process listens (one asyncpg connection) only while it has live sockets.

Subscribers are asyncio queues: one per conversation socket (customer or staff), plus the staff
feed of every conversation (``ALL``). Customers' queues never receive internal notes. A queue
that is full (a stuck client) drops the event; the client catches up by reading the thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Engine, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from omnicx.db import Database

log = logging.getLogger(__name__)
CHANNEL = "omnicx_conversations"
ALL = 0  # the staff feed: every conversation
QUEUE_SIZE = 256
_PENDING = "omnicx_conversations_live"

Loader = Callable[[Database, int], Any]


class LiveEvent(dict[str, Any]):
    """An event as subscribers get it: the same object for every socket, with its JSON text
    made once (``text``), so a fan-out to a thousand sockets encodes it once."""

    text: str


@dataclass(eq=False)
class Subscriber:
    """One socket's queue of events; ``customer`` subscribers never see internal notes."""

    customer: bool
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Hub:
    """This process's live sockets by conversation, and (on PostgreSQL) its LISTEN connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscribers: dict[int, set[Subscriber]] = {}
        self.active: set[Subscriber] = set()
        self.db: Database | None = None
        self.loader: Loader | None = None
        self._conn: asyncpg.Connection | None = None
        self._starting: asyncio.Lock | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def count(self) -> int:
        return len(self.active)

    async def subscribe(self, db: Database, keys: list[int], *, customer: bool) -> Subscriber:
        """A queue receiving the events of ``keys`` (conversation ids, or :data:`ALL`); on
        PostgreSQL it returns once this process is listening, so nothing committed after it
        is missed."""
        self.db = db
        sub = Subscriber(customer)
        self.active.add(sub)
        for key in keys:
            self.subscribers.setdefault(key, set()).add(sub)
        if self.postgres:
            await self._listen()
        return sub

    def add_key(self, sub: Subscriber, key: int) -> None:
        self.subscribers.setdefault(key, set()).add(sub)

    async def unsubscribe(self, sub: Subscriber) -> None:
        self.active.discard(sub)
        for key in [k for k, subs in self.subscribers.items() if sub in subs]:
            subs = self.subscribers[key]
            subs.discard(sub)
            if not subs:
                del self.subscribers[key]
        if not self.active and self._conn is not None:
            conn, self._conn, self._starting = self._conn, None, None
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()

    def dispatch(self, item: dict[str, Any]) -> int:
        """Hand an event to the sockets of its conversation and to the staff feed."""
        taken = 0
        internal = bool(item.get("message", {}).get("internal"))
        targets = self.subscribers.get(int(item["conversation_id"]), set()) | self.subscribers.get(
            ALL, set()
        )
        event = LiveEvent(item)
        event.text = orjson.dumps(item).decode()
        for sub in targets:
            if internal and sub.customer:
                continue
            try:
                sub.queue.put_nowait(event)
                taken += 1
            except asyncio.QueueFull:
                continue
        return taken

    async def _listen(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._conn is not None and not self._conn.is_closed():
                return
            dsn = "postgresql://" + self.url.split("://", 1)[1]
            self._inbox, self._consumer = asyncio.Queue(), None  # this event loop's
            conn = await asyncpg.connect(dsn)
            await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        # One consumer handles notifications in commit order, so a message (read from its row)
        # never overtakes the status change committed after it.
        self._inbox.put_nowait(orjson.loads(payload))
        if self._consumer is None or self._consumer.done():
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        while not self._inbox.empty():
            note = self._inbox.get_nowait()
            if "m" not in note:
                self.dispatch(note["e"])
                continue
            if self.db is None or self.loader is None:
                continue
            try:
                message = await self.loader(self.db, int(note["m"]))
            except Exception:  # a failed read loses one live update; the thread still has it
                log.exception("could not read conversation message %s", note["m"])
                continue
            if message is not None:
                self.dispatch({**note["e"], "message": message})


_HUBS: dict[str, Hub] = {}


def hub_for(db: Database) -> Hub:
    """The hub of this process for ``db``'s database."""
    url = db.settings.database_url
    hub = _HUBS.get(url)
    if hub is None:
        hub = _HUBS[url] = Hub(url)
    return hub


def emit(session: AsyncSession, item: dict[str, Any]) -> None:
    """Announce ``item`` (``type``, ``conversation_id`` and, for a new message, ``message``:
    its JSON form with ``id``) once the session's transaction commits."""
    pending: list[dict[str, Any]] = session.sync_session.info.setdefault(_PENDING, [])
    pending.append(item)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # On PostgreSQL the events become pg_notify calls of the committing transaction (the sync
    # session runs inside SQLAlchemy's greenlet here, so it may execute).
    pending = session.info.get(_PENDING)
    if not pending or session.get_bind().dialect.name != "postgresql":
        return
    for item in session.info.pop(_PENDING):
        message = item.get("message")
        if message is not None:
            rest = {k: v for k, v in item.items() if k != "message"}
            note: dict[str, Any] = {"m": message["id"], "e": rest}
        else:
            note = {"e": item}
        session.execute(select(func.pg_notify(CHANNEL, orjson.dumps(note).decode())))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    hub = _HUBS.get(_url_key(engine.url.render_as_string(hide_password=False)))
    if hub is None:
        return
    for item in pending:
        hub.dispatch(item)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _url_key(url: str) -> str:
    # Settings normalise sqlite:// to sqlite+aiosqlite:// (the engine's URL); match either.
    for hub_url in _HUBS:
        if hub_url == url or hub_url.split("://", 1)[1] == url.split("://", 1)[1]:
            return hub_url
    return url


async def publish_now(db: Database, item: dict[str, Any]) -> None:
    """Announce an event that changes nothing stored (typing) at once."""
    if db.dialect != "postgresql":
        hub_for(db).dispatch(item)
        return
    async with db.engine.begin() as conn:
        await conn.execute(select(func.pg_notify(CHANNEL, orjson.dumps({"e": item}).decode())))
