"""Conversations: one thread per customer across channels, the bot, handoff to agents, live
updates. See :mod:`.service` for the API, :mod:`.bot`, :mod:`.routing`, :mod:`.outbound`,
:mod:`.customers` and :mod:`.live` for the parts.

:func:`register` hooks it into profiles: a merge moves the folded profile's conversations to the
surviving one (two open threads become one: the folded one's messages join the survivor's open
conversation, which keeps the further handoff state of the two, and the emptied one is marked
``merged``); erasure deletes the person's conversations and messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.conversations import live
from omnicx.conversations.models import Conversation, ConversationMessage
from omnicx.hooks import Hooks
from omnicx.settings import Settings

RANK = {"bot": 0, "queued": 1, "assigned": 2}


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    """The thread follows the person: ``from_``'s conversations now belong to ``into``."""
    rows = await session.execute(
        select(Conversation).where(Conversation.open_key.in_([into, from_]))
    )
    open_ = {c.profile_id: c for c in rows.scalars()}
    survivor, folded = open_.get(into), open_.get(from_)
    if survivor is not None and folded is not None:
        await session.execute(
            update(ConversationMessage)
            .where(ConversationMessage.conversation_id == folded.id)
            .values(conversation_id=survivor.id)
        )
        if RANK[folded.status] > RANK[survivor.status]:
            survivor.status, survivor.assignee = folded.status, folded.assignee
            survivor.assigned_at, survivor.handoff = folded.assigned_at, folded.handoff
            survivor.queue = folded.queue
        survivor.collected = {**folded.collected, **survivor.collected}
        survivor.products = list(dict.fromkeys([*survivor.products, *folded.products]))
        survivor.topic = survivor.topic or folded.topic
        survivor.created_at = min(survivor.created_at, folded.created_at)
        survivor.last_message_at = max(survivor.last_message_at, folded.last_message_at)
        folded.status, folded.open_key, folded.merged_into = "merged", None, survivor.id
        await session.flush()
        for c in (folded, survivor):
            live.emit(
                session,
                {
                    "type": "status",
                    "conversation_id": c.id,
                    "status": c.status,
                    "assignee": c.assignee,
                    "queue": c.queue,
                    "merged_into": c.merged_into,
                },
            )
    await session.execute(
        update(Conversation)
        .where(Conversation.profile_id == from_, Conversation.open_key.is_not(None))
        .values(open_key=into)
    )
    await session.execute(
        update(Conversation).where(Conversation.profile_id == from_).values(profile_id=into)
    )


async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
    """The person's conversations and every message in them are deleted."""
    ids = select(Conversation.id).where(Conversation.profile_id.in_(profile_ids))
    await session.execute(
        delete(ConversationMessage).where(ConversationMessage.conversation_id.in_(ids))
    )
    await session.execute(delete(Conversation).where(Conversation.profile_id.in_(profile_ids)))


def register(hooks: Hooks, _settings: Settings) -> None:
    """Conversations follow merges and are erased with the person."""
    hooks.on_merge.append(on_merge)
    hooks.on_erase.append(on_erase)
