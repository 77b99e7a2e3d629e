"""What happens after a send: opens, clicks, unsubscribes, the in-app inbox, merges, erasure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import utcnow
from omnicx.hooks import EraseHook, Hooks
from omnicx.messaging import events
from omnicx.messaging.models import Message
from omnicx.messaging.policies import suppress
from omnicx.messaging.schemas import InboxItem
from omnicx.profiles.record import upsert_consents
from omnicx.settings import Settings

INBOX_VISIBLE = ("sent", "delivered", "opened", "clicked")


async def _locked(session: AsyncSession, message_id: int) -> Message | None:
    return (
        await session.execute(select(Message).where(Message.id == message_id).with_for_update())
    ).scalar_one_or_none()


async def engage(
    session: AsyncSession,
    hooks: Hooks,
    *,
    message_id: int,
    status: Literal["delivered", "opened", "clicked"],
    now: datetime,
    url: str | None = None,
) -> Message | None:
    """Record a delivery, open or click (each click of a new link is its own event)."""
    message = await _locked(session, message_id)
    if message is None or message.status in ("queued", "skipped", "failed"):
        return None
    changed = events.advance(message, status, now, url=url)
    key = "." + hashlib.sha256(url.encode()).hexdigest()[:12] if url else ""
    if changed or url:
        await events.record(
            session,
            hooks,
            profile_id=message.profile_id,
            message=message,
            status=status,
            at=now,
            key=key,
            url=url,
        )
    return message


async def by_provider_id(
    session: AsyncSession, *, provider: str, provider_message_id: str
) -> int | None:
    return (
        await session.execute(
            select(Message.id).where(
                Message.provider == provider, Message.provider_message_id == provider_message_id
            )
        )
    ).scalar_one_or_none()


async def delivery_failed(
    session: AsyncSession,
    hooks: Hooks,
    settings: Settings,
    *,
    message_id: int,
    reason: str,
    prune: bool,
    now: datetime,
) -> Message | None:
    """The service reported, after accepting it, that the message did not arrive: ``failed``,
    or ``bounced`` with the address suppressed when it is dead."""
    message = await _locked(session, message_id)
    if message is None or message.status not in ("sent", "delivered"):
        return None
    status = "bounced" if prune else "failed"
    if prune and message.to:
        await suppress(
            session,
            settings,
            kind=message.to["kind"],
            value=message.to["value"],
            reason="hard_bounce",
            detail=reason,
            now=now,
        )
    message.status, message.reason, message.updated_at = status, reason[:1000], now
    message.history = [*message.history, events.entry(status, now, reason=reason)]
    await events.record(
        session,
        hooks,
        profile_id=message.profile_id,
        message=message,
        status=status,
        at=now,
        key=".callback",
        reason=reason,
    )
    return message


async def unsubscribe(
    session: AsyncSession,
    hooks: Hooks,
    *,
    message_id: int,
    scope: Literal["topic", "channel"],
    now: datetime,
) -> Message | None:
    """Deny consent for the message's channel and topic (or every topic of the channel)."""
    message = await session.get(Message, message_id)
    if message is None or message.profile_id is None or message.channel is None:
        return None
    topic = message.topic if scope == "topic" else "all"
    await upsert_consents(
        session,
        [
            {
                "profile_id": message.profile_id,
                "channel": message.channel,
                "topic": topic,
                "status": "denied",
                "source": f"unsubscribe (message {message.id})",
                "updated_at": now,
            }
        ],
    )
    await hooks.changed(session, {message.profile_id: {"consent": True}})  # segments re-check
    await events.record(
        session,
        hooks,
        profile_id=message.profile_id,
        message=message,
        status="unsubscribed",
        at=now,
        key=f".{scope}",
        unsubscribed_topic=topic,
    )
    return message


def inbox_item(message: Message) -> InboxItem:
    content = message.content
    return InboxItem(
        id=message.id,
        title=content.get("title", ""),
        body=content.get("body", ""),
        image_url=content.get("image_url"),
        link=content.get("link"),
        data=content.get("data") or {},
        state=message.inbox_state or "unread",
        created_at=message.created_at,
    )


async def inbox(
    session: AsyncSession, *, profile_id: str, limit: int, include_dismissed: bool = False
) -> tuple[list[InboxItem], int]:
    """The profile's in-app cards, newest first, and how many are unread."""
    visible = (
        Message.profile_id == profile_id,
        Message.channel == "inapp",
        Message.status.in_(INBOX_VISIBLE),
    )
    stmt = select(Message).where(*visible)
    if not include_dismissed:
        stmt = stmt.where(Message.inbox_state != "dismissed")
    rows = (await session.execute(stmt.order_by(Message.id.desc()).limit(limit))).scalars()
    unread = (
        await session.execute(select(func.count()).where(*visible, Message.inbox_state == "unread"))
    ).scalar_one()
    return [inbox_item(m) for m in rows], unread


async def set_inbox_state(
    session: AsyncSession,
    hooks: Hooks,
    *,
    profile_id: str,
    message_id: int,
    state: Literal["read", "dismissed", "unread"],
    now: datetime,
) -> Message | None:
    message = await _locked(session, message_id)
    if (
        message is None
        or message.profile_id != profile_id
        or message.channel != "inapp"
        or message.status not in INBOX_VISIBLE
    ):
        return None
    message.inbox_state = state
    message.updated_at = now
    if state == "read":
        await engage(session, hooks, message_id=message_id, status="opened", now=now)
    elif state == "dismissed":
        await events.record(
            session, hooks, profile_id=profile_id, message=message, status="dismissed", at=now
        )
    return message


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    await session.execute(
        update(Message)
        .where(Message.profile_id == from_)
        .values(profile_id=into)
        .execution_options(synchronize_session=False)
    )


def eraser(settings: Settings) -> EraseHook:
    async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
        """Suppress every address the person was messaged at (as keyed hashes), then strip the
        messages of anything personal; counts per template and channel stay."""
        rows = await session.execute(
            select(Message.to).where(Message.profile_id.in_(profile_ids), Message.to.is_not(None))
        )
        now = utcnow()
        seen: set[tuple[str, str]] = set()
        for (to,) in rows:
            pair = (to.get("kind"), to.get("value"))
            if pair[0] in ("email", "phone", "push_token", "webpush") and pair not in seen:
                seen.add(pair)
                await suppress(
                    session, settings, kind=pair[0], value=pair[1], reason="erasure", now=now
                )
        await session.execute(
            update(Message)
            .where(Message.profile_id.in_(profile_ids), Message.status.in_(("queued", "sending")))
            .values(status="skipped", reason="the person was erased", due_at=None)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(Message)
            .where(Message.profile_id.in_(profile_ids))
            .values(profile_id=None, to=None, content={}, data={}, history=[], inbox_state=None)
            .execution_options(synchronize_session=False)
        )

    return on_erase
