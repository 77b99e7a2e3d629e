"""The conversations API other packages and the routers use. Every function takes the session
keyword-only and does not commit; live updates go out when the caller's transaction commits.

Threads: a customer has at most one open conversation (``bot``, ``queued``, ``assigned``); a
message on any channel joins it. With none open, the last resolved one reopens if it was
resolved within ``OMNICX_CONVERSATIONS_REOPEN_HOURS`` (back to its agent if they are still
active, else to the queue; one the bot handled goes back to the bot), otherwise a new one starts
and links to it (``previous_id``).

Handoff is a state: ``bot → queued → assigned → resolved``. It stores the reason, the time, what
the bot collected and the transcript so far on the conversation (``handoff``); after it the bot
is silent. An agent's reply to a conversation still with the bot takes it over.

Reading: :func:`list_conversations`, :func:`get`, :func:`messages`, :func:`context_of`.
Writing: :func:`receive` (a customer message from any channel), :func:`post_staff_message`
(reply or internal note, canned responses), :func:`open_by_staff`, :func:`hand_off`,
:func:`assign`, :func:`resolve`, :func:`mark_read`, :func:`touch_presence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import Role, Staff
from omnicx.commerce import service as commerce
from omnicx.conversations import bot, live, outbound, routing
from omnicx.conversations.models import (
    Agent,
    CannedResponse,
    Conversation,
    ConversationMessage,
)
from omnicx.conversations.schemas import (
    ConversationContext,
    ConversationRead,
    MessageRead,
)
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.profiles.internal import record_internal
from omnicx.settings import Settings

TRANSCRIPT_MESSAGES = 100
STORE_SCOPE_PICKUPS = 5000


@dataclass
class Received:
    conversation: Conversation
    message: ConversationMessage
    replies: list[ConversationMessage] = field(default_factory=list)
    duplicate: bool = False


# --- reading --------------------------------------------------------------------------------


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


# --- threads --------------------------------------------------------------------------------


async def _thread_for(
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
        agent = await session.get(Agent, last.assignee) if last.assignee else None
        last.status = (
            "assigned"
            if agent is not None and agent.active
            else ("queued" if last.handoff else "bot")
        )
        if last.status != "assigned":
            last.assignee = None
        last.open_key, last.resolved_at, last.updated_at = profile_id, None, now
        _status_event(session, last)
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


def _status_event(session: AsyncSession, c: Conversation) -> None:
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


async def _add(
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


def _announce(session: AsyncSession, message: ConversationMessage) -> None:
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


async def _check_rate(
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


async def _products_in(session: AsyncSession, text: str) -> list[str]:
    lowered = text.lower()
    words = [w for w in bot.words(text) if len(w) >= 4][:10]
    found: list[str] = []
    for word in words:
        for product in await commerce.list_products(session, q=word, category=None, limit=20):
            if product.name and product.name.lower() in lowered and product.id not in found:
                found.append(product.id)
    return found


async def receive(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    profile_id: str,
    channel: str,
    body: str,
    now: datetime,
    verified: bool = False,
    attachments: list[dict[str, Any]] | None = None,
    external_id: str | None = None,
    thread_id: int | None = None,
) -> Received:
    """A customer message from any channel: joins her thread, lets the bot answer."""
    body = check_body(settings, body)
    if external_id is not None:
        seen = await by_external_id(session, external_id=external_id)
        if seen is not None:
            c = await session.get(Conversation, seen.conversation_id)
            assert c is not None
            return Received(c, seen, duplicate=True)
    c = await _thread_for(
        session,
        settings,
        hooks,
        profile_id=profile_id,
        channel=channel,
        now=now,
        thread_id=thread_id,
    )
    await _check_rate(session, settings, c, now)
    message = await _add(
        session,
        c,
        author="customer",
        body=body,
        channel=channel,
        now=now,
        attachments=attachments,
        external_id=external_id,
    )
    c.channel = channel
    for product in await _products_in(session, body):
        if product not in c.products:
            c.products = [*c.products, product][-20:]
    _announce(session, message)
    received = Received(c, message)
    if c.status == "bot":
        await _bot_turn(session, settings, hooks, c, body, verified, now, received)
    return received


async def _bot_turn(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    c: Conversation,
    body: str,
    verified: bool,
    now: datetime,
    received: Received,
) -> None:
    misses = int(c.collected.get("_misses", 0))
    turn = await bot.respond(
        session,
        settings,
        profile_id=c.profile_id,
        text=body,
        verified=verified,
        collected=c.collected,
        misses=misses,
    )
    collected = {**c.collected, **turn.collected, "_misses": 0 if turn.answered else misses + 1}
    c.collected = collected
    if turn.topic:
        c.topic = turn.topic
    if turn.reply:
        reply = await _add(
            session, c, author="bot", body=turn.reply, channel=c.channel, now=now, author_name="Bot"
        )
        await outbound.deliver(
            session, settings, hooks, conversation=c, message=reply, now=now, answering=True
        )
        _announce(session, reply)
        received.replies.append(reply)
    if turn.handoff:
        received.replies += await hand_off(
            session, settings, hooks, conversation=c, reason=turn.handoff, now=now
        )


# --- handoff, assignment, resolution ---------------------------------------------------------


async def hand_off(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    reason: str,
    now: datetime,
    queue: str | None = None,
) -> list[ConversationMessage]:
    """From the bot to the queue, carrying the transcript and what the bot collected; then a
    free agent gets it (round robin), or outside business hours the customer hears when we are
    back. Returns the messages it added."""
    c = conversation
    if c.status not in ("bot",):
        return []
    transcript = await messages(
        session, conversation_id=c.id, include_internal=False, limit=TRANSCRIPT_MESSAGES
    )
    collected = {k: v for k, v in c.collected.items() if not k.startswith("_")}
    c.handoff = {
        "reason": reason,
        "at": now.isoformat(),
        "collected": collected,
        "transcript": [
            {
                "author": m.author,
                "channel": m.channel,
                "body": m.body,
                "at": m.created_at.isoformat(),
            }
            for m in transcript
        ],
    }
    c.status, c.updated_at = "queued", now
    if queue:
        c.queue = queue
    added: list[ConversationMessage] = []
    await record_internal(
        session,
        profile_id=c.profile_id,
        event="Conversation Handed Off",
        message_id=f"conversation.{c.id}.handoff.{int(now.timestamp() * 1000)}",
        timestamp=now,
        properties={
            "conversation_id": c.id,
            "reason": reason,
            "queue": c.queue,
            "topic": c.topic,
            "products": list(c.products),
            **{f"collected_{k}": v for k, v in collected.items()},
        },
        hooks=hooks,
    )
    if routing.is_open(settings, now):
        await assign(session, settings, hooks, conversation=c, agent=None, now=now)
    else:
        away = await _add(
            session,
            c,
            author="system",
            body=settings.conversations_away_message,
            channel=c.channel,
            now=now,
        )
        await outbound.deliver(
            session, settings, hooks, conversation=c, message=away, now=now, answering=True
        )
        _announce(session, away)
        added.append(away)
    _status_event(session, c)
    return added


async def assign(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    agent: str | None,
    now: datetime,
) -> bool:
    """Give the conversation to ``agent``, or to the next free agent of its queue (round robin);
    whether it is assigned now."""
    c = conversation
    if c.status in ("resolved", "merged"):
        raise ApiError(409, "conversation_closed", f"conversation {c.id} is {c.status}")
    if agent is None:
        picked = await routing.pick_agent(session, queue=c.queue)
        if picked is None:
            if c.status == "bot":
                c.status = "queued"
            _status_event(session, c)
            return False
    else:
        picked = await session.get(Agent, agent)
        if picked is None:
            picked = Agent(name=agent, queues=[c.queue], capacity=5, active=True)
            session.add(picked)
    picked.last_assigned_at = now
    c.status, c.assignee, c.assigned_at, c.updated_at = "assigned", picked.name, now, now
    live.emit(
        session,
        {"type": "assignment", "conversation_id": c.id, "assignee": picked.name},
    )
    _status_event(session, c)
    return True


async def resolve(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    csat: bool,
    now: datetime,
) -> Conversation:
    """Close the conversation, ask for a CSAT score, and give the freed agent the next one."""
    c = conversation
    if c.status in ("resolved", "merged"):
        return c
    agent = c.assignee
    c.status, c.open_key, c.resolved_at, c.updated_at = "resolved", None, now, now
    if csat:
        c.csat_message_id = await outbound.request_csat(
            session, settings, hooks, conversation=c, now=now
        )
    await record_internal(
        session,
        profile_id=c.profile_id,
        event="Conversation Resolved",
        message_id=f"conversation.{c.id}.resolved.{int(now.timestamp() * 1000)}",
        timestamp=now,
        properties={
            "conversation_id": c.id,
            "agent": agent,
            "topic": c.topic,
            "products": list(c.products),
            "channel": c.channel,
        },
        hooks=hooks,
    )
    _status_event(session, c)
    await session.flush()
    if agent is not None and routing.is_open(settings, now):
        waiting = (
            await session.execute(
                select(Conversation)
                .where(Conversation.status == "queued", Conversation.queue == c.queue)
                .order_by(Conversation.updated_at)
                .limit(1)
            )
        ).scalar_one_or_none()
        if waiting is not None:
            await assign(session, settings, hooks, conversation=waiting, agent=None, now=now)
    return c


# --- staff ------------------------------------------------------------------------------------


def _author(staff: Staff) -> str:
    return "associate" if staff.role == Role.store_associate else "agent"


async def canned_body(session: AsyncSession, *, name: str) -> str:
    row = await session.get(CannedResponse, name)
    if row is None:
        raise ApiError(404, "canned_response_not_found", f"no canned response {name!r}")
    return row.body


async def post_staff_message(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    staff: Staff,
    body: str,
    internal: bool,
    now: datetime,
    channel: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> ConversationMessage:
    """A reply (reaches the customer where she is now) or an internal note."""
    c = conversation
    body = check_body(settings, body)
    if c.status == "merged":
        raise ApiError(409, "conversation_merged", f"conversation {c.id} continues in another")
    if not internal and c.status == "resolved":
        c.status, c.open_key, c.resolved_at = "assigned", c.profile_id, None
        if await open_of(session, profile_id=c.profile_id) not in (None, c):
            raise ApiError(409, "conversation_closed", "the customer has a newer conversation")
    message = await _add(
        session,
        c,
        author=_author(staff),
        author_name=staff.name,
        body=body,
        channel=channel or ("store" if staff.role == Role.store_associate else c.channel),
        now=now,
        internal=internal,
        attachments=attachments,
    )
    if not internal:
        if c.status in ("bot", "queued") or (c.status == "assigned" and c.assignee is None):
            c.handoff = c.handoff or {
                "reason": f"taken over by {staff.name}",
                "at": now.isoformat(),
                "collected": {k: v for k, v in c.collected.items() if not k.startswith("_")},
                "transcript": [],
            }
            c.status, c.assignee, c.assigned_at = "assigned", staff.name, now
            _status_event(session, c)
        message.channel = c.channel
        await outbound.deliver(session, settings, hooks, conversation=c, message=message, now=now)
    _announce(session, message)
    return message


async def open_by_staff(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    profile_id: str,
    staff: Staff,
    body: str,
    internal: bool,
    channel: str,
    store_id: str | None,
    now: datetime,
) -> tuple[Conversation, ConversationMessage]:
    """An associate in the store or an agent on the phone starts (or joins) the thread."""
    check_body(settings, body)
    if staff.role == Role.store_associate:
        store_id = staff.store_id
    c = await _thread_for(
        session,
        settings,
        hooks,
        profile_id=profile_id,
        channel=channel,
        now=now,
        status="assigned",
        opened_by=staff.name,
        store_id=store_id,
    )
    if c.opened_by == staff.name and c.assignee is None and c.status == "assigned":
        c.assignee, c.assigned_at = staff.name, now
    message = await post_staff_message(
        session,
        settings,
        hooks,
        conversation=c,
        staff=staff,
        body=body,
        internal=internal,
        now=now,
        channel=channel,
    )
    return c, message


async def mark_read(
    session: AsyncSession, *, conversation: Conversation, up_to: int, reader: str, now: datetime
) -> int:
    """The customer (``reader`` customer) or staff read everything up to ``up_to``: marks the
    other side's messages read; how many changed."""
    theirs = (
        ConversationMessage.author != "customer"
        if reader == "customer"
        else ConversationMessage.author == "customer"
    )
    result = await session.execute(
        update(ConversationMessage)
        .where(
            ConversationMessage.conversation_id == conversation.id,
            ConversationMessage.id <= up_to,
            ConversationMessage.read_at.is_(None),
            theirs,
        )
        .values(read_at=now)
    )
    changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if changed:
        live.emit(
            session,
            {"type": "read", "conversation_id": conversation.id, "by": reader, "up_to": up_to},
        )
    return changed


async def touch_presence(
    session: AsyncSession, *, conversation_id: int, seen: datetime | None
) -> None:
    """The customer's widget is connected (``seen``: now) or went away (``None``)."""
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(customer_seen_at=seen)
    )


# --- CSAT ---------------------------------------------------------------------------------------


async def answer_csat(
    session: AsyncSession,
    hooks: Hooks,
    *,
    conversation: Conversation,
    score: int,
    channel: str,
    now: datetime,
) -> bool:
    """The customer's CSAT score (1-5) for this conversation, as the ``Survey Answered`` event
    analytics counts; one answer per conversation (whether this one was the first)."""
    if not 1 <= score <= 5:
        raise ApiError(422, "invalid_score", "a CSAT score is 1 to 5")
    return await record_internal(
        session,
        profile_id=conversation.profile_id,
        event="Survey Answered",
        message_id=f"conversation.{conversation.id}.csat",
        timestamp=now,
        properties={
            "survey": "csat",
            "score": score,
            "channel": channel,
            "agent": conversation.assignee,
            "store_id": conversation.store_id,
            "conversation_id": conversation.id,
        },
        hooks=hooks,
    )


async def awaiting_csat(
    session: AsyncSession, settings: Settings, *, profile_id: str, now: datetime
) -> Conversation | None:
    """Her last conversation, if it is resolved, asked for a CSAT score, and she has not
    written since (so a bare "4" by SMS is her score, not a new question)."""
    if await open_of(session, profile_id=profile_id) is not None:
        return None
    last = await latest_of(session, profile_id=profile_id)
    window = timedelta(hours=max(settings.conversations_reopen_hours, 1))
    if last is None or last.csat_message_id is None or last.resolved_at is None:
        return None
    return last if now - last.resolved_at <= window else None
