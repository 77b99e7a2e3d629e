"""Status changes of a message, each also a timeline event (``Message Sent``, ``Message
Opened``…) so segments and journeys can act on them.

Statuses: ``queued → sending → sent → delivered → opened → clicked``, or the terminal ``bounced``,
``failed`` and ``skipped``. Engagement only moves forward (an open after a click keeps
``clicked``; each still gets its timestamp). The timeline event's ``messageId`` is derived from
the message id and the status (and attempt, for requeues), so recording a change twice adds one
event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.hooks import Hooks
from omnicx.messaging.models import Message
from omnicx.profiles.internal import InternalEvent, record_internal, record_internal_many
from omnicx.profiles.record import iso

EVENT_NAMES = {
    "queued": "Message Queued",
    "sending": "Message Sending",
    "sent": "Message Sent",
    "delivered": "Message Delivered",
    "opened": "Message Opened",
    "clicked": "Message Clicked",
    "bounced": "Message Bounced",
    "failed": "Message Failed",
    "skipped": "Message Skipped",
    "unsubscribed": "Message Unsubscribed",
    "dismissed": "Message Dismissed",
}
RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "opened": 4, "clicked": 5}
TERMINAL = ("bounced", "failed", "skipped")
STAMP = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
}


def entry(status: str, at: datetime, **detail: Any) -> dict[str, Any]:
    return {"status": status, "at": iso(at), **{k: v for k, v in detail.items() if v is not None}}


def properties(message: Message | dict[str, Any], **extra: Any) -> dict[str, Any]:
    get = message.get if isinstance(message, dict) else lambda k: getattr(message, k)
    props = {
        "message_id": get("id"),
        "message": get("template"),
        "channel": get("channel"),
        "category": get("category"),
        "topic": get("topic"),
        "provider": get("provider"),
    }
    props.update({k: v for k, v in extra.items() if v is not None})
    return props


def internal_event(
    profile_id: str,
    message: Message | dict[str, Any],
    status: str,
    at: datetime,
    key: str = "",
    **extra: Any,
) -> InternalEvent:
    props = properties(message, **extra)
    return InternalEvent(
        profile_id=profile_id,
        event=EVENT_NAMES[status],
        message_id=f"omnicx.message.{props['message_id']}.{status}{key}",
        timestamp=at,
        properties=props,
    )


async def record_many(session: AsyncSession, hooks: Hooks, changes: list[InternalEvent]) -> None:
    """Many status changes at once (the delivery loop's batches). The profile ids come from the
    message rows, which merges move and erasure clears, so they are live."""
    await record_internal_many(session, changes, hooks=hooks)


async def record(
    session: AsyncSession,
    hooks: Hooks,
    *,
    profile_id: str | None,
    message: Message | dict[str, Any],
    status: str,
    at: datetime,
    key: str = "",
    **extra: Any,
) -> None:
    """Add the status change to the customer's timeline (once per message, status and key)."""
    if profile_id is None:
        return
    change = internal_event(profile_id, message, status, at, key, **extra)
    await record_internal(
        session,
        profile_id=profile_id,
        event=change.event,
        message_id=change.message_id,
        timestamp=at,
        properties=change.properties,
        hooks=hooks,
    )


def advance(message: Message, status: str, at: datetime, **detail: Any) -> bool:
    """Apply an engagement or delivery status in memory; whether anything changed."""
    stamp = STAMP.get(status)
    changed = False
    if stamp is not None and getattr(message, stamp) is None:
        setattr(message, stamp, at)
        changed = True
        for earlier, column in STAMP.items():  # an open proves the send and the delivery
            if RANK[earlier] < RANK[status] and getattr(message, column) is None:
                setattr(message, column, at)
    if message.status in RANK and RANK[status] > RANK[message.status]:
        message.status = status
        changed = True
    if changed:
        message.history = [*message.history, entry(status, at, **detail)]
        message.updated_at = at
    return changed
