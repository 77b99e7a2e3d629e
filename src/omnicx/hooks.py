"""How upper packages react to what happens below them, without upward imports.

At start-up each capability registers its reactions on one :class:`Hooks` object (see
``omnicx.app.build_hooks``). The profiles package then calls them *inside the transaction that
stores the events*, so a reaction commits with its cause or not at all: nothing acknowledged is
lost between the two, and a resent event (deduplicated) reacts once.

- ``projectors``: given the newly stored events, keep derived state current (carts, orders…).
- ``on_merge``: a profile was folded into another; move what points at the old one.
- ``on_erase``: a person was erased; remove their personal data.
- ``on_change``: something about profiles changed that is not an event (a profile was created,
  consent set through the API, computed traits refreshed): profile id → what, e.g.
  ``{"consent": True}`` or ``{"created": True}``; the key :data:`ALL_PROFILES` means everyone
  (a CLV refresh), so listeners recompute rather than queue a million profiles.
- ``timers``: handlers for durable timers of a kind (see :mod:`omnicx.timers`).
- ``jobs``: work the background worker polls for besides timers (a queue of its own); each
  returns how many items it handled, so an idle worker can sleep.
- ``pumped``: timer kinds a job claims and runs in batches itself; the worker's ``run_due``
  leaves them to it (``run_due`` called directly, as tests do, still runs them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from omnicx.db import Database


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as reactions see it, after it was stored and resolved to its profile."""

    id: int | None
    profile_id: str
    source_id: int
    message_id: str
    type: str
    event: str | None
    channel: str
    timestamp: datetime
    properties: dict[str, Any]
    context: dict[str, Any]
    traits: dict[str, Any] = field(default_factory=dict)  # identify / group traits


Projector = Callable[[AsyncSession, Sequence[StoredEvent]], Awaitable[None]]
MergeHook = Callable[[AsyncSession, str, str], Awaitable[None]]
EraseHook = Callable[[AsyncSession, Sequence[str]], Awaitable[None]]
TimerHandler = Callable[[AsyncSession, dict[str, Any], datetime], Awaitable[None]]
ALL_PROFILES = "*"
ChangeHook = Callable[[AsyncSession, dict[str, dict[str, Any]]], Awaitable[None]]
Job = Callable[["Database", "Hooks", datetime], Awaitable[int]]


@dataclass
class Hooks:
    projectors: list[Projector] = field(default_factory=list)
    on_merge: list[MergeHook] = field(default_factory=list)
    on_erase: list[EraseHook] = field(default_factory=list)
    on_change: list[ChangeHook] = field(default_factory=list)
    timers: dict[str, TimerHandler] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    pumped: set[str] = field(default_factory=set)

    def timer(self, kind: str, handler: TimerHandler) -> None:
        if kind in self.timers:
            raise ValueError(f"a handler for timer kind {kind!r} is already registered")
        self.timers[kind] = handler

    async def project(self, session: AsyncSession, events: Sequence[StoredEvent]) -> None:
        if events:
            for projector in self.projectors:
                await projector(session, events)

    async def merged(self, session: AsyncSession, into: str, from_: str) -> None:
        for hook in self.on_merge:
            await hook(session, into, from_)

    async def erased(self, session: AsyncSession, profile_ids: Sequence[str]) -> None:
        for hook in self.on_erase:
            await hook(session, profile_ids)

    async def changed(self, session: AsyncSession, changes: dict[str, dict[str, Any]]) -> None:
        """``changes``: profile id → what changed, e.g. ``{"consent": True}``."""
        if changes:
            for hook in self.on_change:
                await hook(session, changes)


def get_hooks(request: Request) -> Hooks:
    hooks: Hooks = request.app.state.hooks
    return hooks


AppHooks = Annotated[Hooks, Depends(get_hooks)]
