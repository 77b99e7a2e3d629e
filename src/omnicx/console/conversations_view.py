"""Conversations as console pages show them, through the conversations API's handlers in-process
with the console user as caller: the same access rules (admins and agents see every thread, a
store associate those of its store's customers, others none)."""

from __future__ import annotations

from typing import Any

from omnicx.auth.service import Role, Staff
from omnicx.conversations import router as api
from omnicx.conversations.schemas import ConversationOpen
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.hooks import Hooks

DESK = frozenset({Role.admin, Role.agent, Role.store_associate})


def kind_of(message: Any) -> str:
    """customer, bot, agent or note: how a message bubble is drawn."""
    if message.internal:
        return "note"
    if message.author in ("customer", "bot"):
        return str(message.author)
    return "agent"


async def thread(db: Database, staff: Staff, conversation_id: int) -> list[dict[str, Any]]:
    page = await api.list_messages(db, staff, conversation_id, after=0, limit=500)
    return [
        {
            "id": m.id,
            "kind": kind_of(m),
            "author": m.author_name or m.author,
            "channel": m.channel,
            "body": m.body,
            "created_at": m.created_at,
            "delivery": m.delivery,
        }
        for m in page.items
    ]


async def of_profile(
    db: Database, staff: Staff, profile_id: str, limit: int = 3
) -> list[dict[str, Any]] | None:
    """The customer's recent conversations with their messages, newest first; None when the
    staff's role does not read conversations."""
    if staff.role not in DESK:
        return None
    try:
        page = await api.profile_conversations(db, staff, profile_id, limit=limit)
    except ApiError:
        return []
    out = []
    for c in page.items:
        out.append({**c.model_dump(), "messages": await thread(db, staff, c.id)})
    return out


async def add_note(db: Database, hooks: Hooks, staff: Staff, profile_id: str, body: str) -> None:
    """An internal note on the customer's thread (opened by staff when none is open)."""
    await api.open_conversation(
        db,
        hooks,
        staff,
        ConversationOpen(
            to=profile_id,
            body=body,
            internal=True,
            channel="store" if staff.role is Role.store_associate else "phone",
            store_id=staff.store_id,
        ),
    )
