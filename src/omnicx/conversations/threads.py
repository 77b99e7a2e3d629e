"""The thread underneath the service: finding or opening a customer's conversation, adding a
message, announcing changes live, and the checks every customer message passes (size, rate)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce import service as commerce
from omnicx.conversations import bot, live
from omnicx.conversations.models import Agent, Conversation, ConversationMessage
from omnicx.conversations.queries import latest_of, message_read, open_of
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.profiles.internal import record_internal
from omnicx.settings import Settings


async def thread_for(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    profile_id: str,
    channel: str,
    now: datetime,
    status: str = "bot",
    opened_by: str | None = None,
    store_id: str | None = None,
    thread_id: int | None = None,
) -> Conversation:
    """The open conversation of the customer: joined, reopened, or started. ``thread_id``: the
    thread she answers (an email reply, a link back), reopened whatever its age."""
    current = await open_of(session, profile_id=profile_id)
    if current is not None:
        return current
    last = await latest_of(session, profile_id=profile_id)
    window = timedelta(hours=settings.conversations_reopen_hours)
    hinted = await session.get(Conversation, thread_id) if thread_id is not None else None
    if hinted is not None and hinted.profile_id == profile_id and hinted.status == "resolved":
        last, window = hinted, timedelta.max
    if last is not None and last.resolved_at is not None and now - last.resolved_at <= window:
        # Back to her agent unless the roster says they are away (staff who are not in the
        # round-robin roster keep what they took over).
        agent = await session.get(Agent, last.assignee) if last.assignee else None
        back = last.assignee is not None and (agent is None or agent.active)
        last.status = "assigned" if back else ("queued" if last.handoff else "bot")
        if last.status != "assigned":
            last.assignee = None
        last.open_key, last.resolved_at, last.updated_at = profile_id, None, now
        status_event(session, last)
        return last
    conversation = Conversation(
        profile_id=profile_id,
        open_key=profile_id,
        status=status,
        queue=settings.conversations_default_queue,
        channel=channel,
        previous_id=last.id if last is not None else None,
        opened_by=opened_by,
        store_id=store_id,
        products=[],
        collected={},
        created_at=now,
        updated_at=now,
        last_message_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(conversation)
            await session.flush()
    except IntegrityError:  # another channel opened it at the same moment
        current = await open_of(session, profile_id=profile_id)
        if current is None:
            raise
        return current
    await record_internal(
        session,
        profile_id=profile_id,
        event="Conversation Started",
        message_id=f"conversation.{conversation.id}.started",
        timestamp=now,
        properties={"conversation_id": conversation.id, "channel": channel},
        hooks=hooks,
    )
    return conversation


def status_event(session: AsyncSession, c: Conversation) -> None:
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


async def add_message(
    session: AsyncSession,
    c: Conversation,
    *,
    author: str,
    body: str,
    channel: str,
    now: datetime,
    author_name: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    internal: bool = False,
    external_id: str | None = None,
) -> ConversationMessage:
    message = ConversationMessage(
        conversation_id=c.id,
        author=author,
        author_name=author_name,
        channel=channel,
        body=body,
        attachments=attachments or [],
        internal=internal,
        external_id=external_id,
        delivery="delivered" if author == "customer" or internal else "pending",
        created_at=now,
    )
    session.add(message)
    await session.flush()
    c.last_message_at = c.updated_at = now
    return message


def announce(session: AsyncSession, message: ConversationMessage) -> None:
    live.emit(
        session,
        {
            "type": "message",
            "conversation_id": message.conversation_id,
            "message": message_read(message).model_dump(mode="json"),
        },
    )


def check_body(settings: Settings, body: str) -> str:
    body = body.strip()
    if not body:
        raise ApiError(422, "empty_message", "the message has no text")
    if len(body) > settings.conversations_max_message_chars:
        raise ApiError(
            413,
            "message_too_large",
            f"messages are limited to {settings.conversations_max_message_chars} characters",
        )
    return body


async def check_rate(
    session: AsyncSession, settings: Settings, c: Conversation, now: datetime
) -> None:
    since = now - timedelta(seconds=settings.conversations_rate_window_seconds)
    count = (
        await session.execute(
            select(func.count()).where(
                ConversationMessage.conversation_id == c.id,
                ConversationMessage.author == "customer",
                ConversationMessage.created_at > since,
            )
        )
    ).scalar_one()
    if count >= settings.conversations_rate_limit:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {settings.conversations_rate_limit} messages per "
            f"{settings.conversations_rate_window_seconds:g} s in a conversation",
        )


async def products_in(session: AsyncSession, text: str) -> list[str]:
    lowered = text.lower()
    words = [w for w in bot.words(text) if len(w) >= 4][:10]
    found: list[str] = []
    for word in words:
        for product in await commerce.list_products(session, q=word, category=None, limit=20):
            if product.name and product.name.lower() in lowered and product.id not in found:
                found.append(product.id)
    return found
