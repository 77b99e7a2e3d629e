"""Reading conversations: by id, a customer's open or last one, messages, the staff's view
(what a store associate may see), and the brief context journeys and templates use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import Role, Staff
from omnicx.commerce import service as commerce
from omnicx.conversations import outbound
from omnicx.conversations.models import Conversation, ConversationMessage
from omnicx.conversations.schemas import ConversationContext, ConversationRead, MessageRead
from omnicx.settings import Settings

STORE_SCOPE_PICKUPS = 5000


def conversation_read(c: Conversation, settings: Settings, now: datetime) -> ConversationRead:
    return ConversationRead(
        id=c.id,
        profile_id=c.profile_id,
        status=c.status,
        queue=c.queue,
        assignee=c.assignee,
        store_id=c.store_id,
        opened_by=c.opened_by,
        channel=c.channel,
        previous_id=c.previous_id,
        merged_into=c.merged_into,
        topic=c.topic,
        products=list(c.products),
        collected=dict(c.collected),
        handoff=c.handoff,
        customer_online=outbound.customer_online(settings, c, now),
        created_at=c.created_at,
        updated_at=c.updated_at,
        last_message_at=c.last_message_at,
        assigned_at=c.assigned_at,
        resolved_at=c.resolved_at,
    )


def message_read(m: ConversationMessage) -> MessageRead:
    return MessageRead(
        id=m.id,
        conversation_id=m.conversation_id,
        author=m.author,
        author_name=m.author_name,
        channel=m.channel,
        body=m.body,
        attachments=list(m.attachments),
        internal=m.internal,
        delivery=m.delivery,
        read_at=m.read_at,
        created_at=m.created_at,
    )


async def get(session: AsyncSession, *, conversation_id: int) -> Conversation | None:
    return await session.get(Conversation, conversation_id)


async def open_of(session: AsyncSession, *, profile_id: str) -> Conversation | None:
    """The customer's open conversation, if any."""
    return (
        await session.execute(select(Conversation).where(Conversation.open_key == profile_id))
    ).scalar_one_or_none()


async def latest_of(session: AsyncSession, *, profile_id: str) -> Conversation | None:
    return (
        await session.execute(
            select(Conversation)
            .where(Conversation.profile_id == profile_id, Conversation.status != "merged")
            .order_by(Conversation.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def by_external_id(session: AsyncSession, *, external_id: str) -> ConversationMessage | None:
    """The message an email Message-ID or a Twilio MessageSid already brought in, if any."""
    return (
        await session.execute(
            select(ConversationMessage).where(ConversationMessage.external_id == external_id)
        )
    ).scalar_one_or_none()


async def messages(
    session: AsyncSession,
    *,
    conversation_id: int,
    include_internal: bool,
    after: int = 0,
    limit: int = 500,
) -> list[ConversationMessage]:
    stmt = select(ConversationMessage).where(
        ConversationMessage.conversation_id == conversation_id, ConversationMessage.id > after
    )
    if not include_internal:
        stmt = stmt.where(ConversationMessage.internal.is_(False))
    rows = await session.execute(stmt.order_by(ConversationMessage.id).limit(limit))
    return list(rows.scalars())


async def store_profiles(session: AsyncSession, settings: Settings, store_id: str) -> set[str]:
    """Customers with a pickup at ``store_id``."""
    pickups = await commerce.store_pickups(
        session,
        store_id=store_id,
        statuses=[],
        secret=settings.secret_key.get_secret_value(),
        limit=STORE_SCOPE_PICKUPS,
    )
    return {p.profile_id for p in pickups if p.profile_id}


async def can_access(
    session: AsyncSession, settings: Settings, *, staff: Staff, conversation: Conversation
) -> bool:
    """Agents and admins reach every conversation; a store associate those opened at or by
    them, and those of customers with a pickup at their store."""
    if staff.role in (Role.admin, Role.agent):
        return True
    if staff.role != Role.store_associate or staff.store_id is None:
        return False
    if conversation.opened_by == staff.name or conversation.store_id == staff.store_id:
        return True
    orders = await commerce.list_orders(
        session,
        profile_id=conversation.profile_id,
        limit=100,
        secret=settings.secret_key.get_secret_value(),
    )
    return any(o.pickup is not None and o.pickup.store_id == staff.store_id for o in orders)


async def list_conversations(
    session: AsyncSession,
    settings: Settings,
    *,
    staff: Staff,
    status: Sequence[str] = (),
    queue: str | None = None,
    assignee: str | None = None,
    store_id: str | None = None,
    profile_id: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Conversation]:
    """Newest activity first; a store associate sees only the conversations of their store."""
    stmt = select(Conversation).where(Conversation.status != "merged")
    if status:
        stmt = stmt.where(Conversation.status.in_(status))
    if queue:
        stmt = stmt.where(Conversation.queue == queue)
    if assignee:
        stmt = stmt.where(Conversation.assignee == assignee)
    if profile_id:
        stmt = stmt.where(Conversation.profile_id == profile_id)
    if before is not None:
        stmt = stmt.where(Conversation.id < before)
    if staff.role == Role.store_associate:
        store_id = staff.store_id
        if store_id is None:
            return []
    if store_id:
        customers = await store_profiles(session, settings, store_id)
        scope = [Conversation.store_id == store_id, Conversation.profile_id.in_(customers)]
        if staff.role == Role.store_associate:
            scope.append(Conversation.opened_by == staff.name)
        stmt = stmt.where(or_(*scope))
    stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
    return list((await session.execute(stmt.limit(limit))).scalars())


async def context_of(session: AsyncSession, *, profile_id: str) -> ConversationContext:
    """The customer's last conversation in brief, for journeys, templates and the store view."""
    c = await latest_of(session, profile_id=profile_id)
    if c is None:
        return ConversationContext(
            conversation_id=None,
            status=None,
            topic=None,
            products=[],
            collected={},
            last_message_at=None,
        )
    return ConversationContext(
        conversation_id=c.id,
        status=c.status,
        topic=c.topic,
        products=list(c.products),
        collected=dict(c.collected),
        last_message_at=c.last_message_at,
    )
