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

Email waits for a person: it is queued at once (a bot's guess mailed back helps nobody).

Reading: :func:`list_conversations`, :func:`get`, :func:`messages`, :func:`context_of`
(defined in :mod:`.queries`, the thread plumbing in :mod:`.threads`; both re-exported here, so
callers import this module alone).
Writing: :func:`receive` (a customer message from any channel), :func:`post_staff_message`
(reply or internal note, canned responses), :func:`open_by_staff`, :func:`hand_off`,
:func:`assign`, :func:`resolve`, :func:`mark_read`, :func:`touch_presence`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import Role, Staff
from omnicx.conversations import bot, live, outbound, routing
from omnicx.conversations.models import Agent, CannedResponse, Conversation, ConversationMessage
from omnicx.conversations.queries import (
    by_external_id,
    can_access,
    context_of,
    conversation_read,
    get,
    latest_of,
    list_conversations,
    message_read,
    messages,
    open_of,
    store_profiles,
)
from omnicx.conversations.threads import (
    add_message,
    announce,
    check_body,
    check_rate,
    products_in,
    status_event,
    thread_for,
)
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.profiles.internal import record_internal
from omnicx.settings import Settings

__all__ = [
    "Received",
    "answer_csat",
    "assign",
    "awaiting_csat",
    "by_external_id",
    "can_access",
    "canned_body",
    "check_body",
    "context_of",
    "conversation_read",
    "get",
    "hand_off",
    "latest_of",
    "list_conversations",
    "mark_read",
    "message_read",
    "messages",
    "open_by_staff",
    "open_of",
    "post_staff_message",
    "receive",
    "resolve",
    "store_profiles",
    "touch_presence",
]
TRANSCRIPT_MESSAGES = 100


@dataclass
class Received:
    conversation: Conversation
    message: ConversationMessage
    replies: list[ConversationMessage] = field(default_factory=list)
    duplicate: bool = False


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
    c = await thread_for(
        session,
        settings,
        hooks,
        profile_id=profile_id,
        channel=channel,
        now=now,
        thread_id=thread_id,
    )
    await check_rate(session, settings, c, now)
    message = await add_message(
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
    for product in await products_in(session, body):
        if product not in c.products:
            c.products = [*c.products, product][-20:]
    announce(session, message)
    received = Received(c, message)
    if c.status == "bot" and channel == "email":
        # Email waits for a person: a bot's guess sent as an email reply helps nobody.
        received.replies += await hand_off(
            session, settings, hooks, conversation=c, reason="email", now=now
        )
    elif c.status == "bot":
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
        reply = await add_message(
            session, c, author="bot", body=turn.reply, channel=c.channel, now=now, author_name="Bot"
        )
        await outbound.deliver(
            session, settings, hooks, conversation=c, message=reply, now=now, answering=True
        )
        announce(session, reply)
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
        away = await add_message(
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
        announce(session, away)
        added.append(away)
    status_event(session, c)
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
            status_event(session, c)
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
    status_event(session, c)
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
    status_event(session, c)
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
        # Writing to her in a resolved thread reopens it, unless she has opened another since.
        if await open_of(session, profile_id=c.profile_id) is not None:
            raise ApiError(409, "conversation_closed", "the customer has a newer conversation")
        c.status, c.open_key, c.resolved_at = "assigned", c.profile_id, None
        c.assignee = c.assignee or staff.name
    message = await add_message(
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
            status_event(session, c)
        message.channel = c.channel
        await outbound.deliver(session, settings, hooks, conversation=c, message=message, now=now)
    announce(session, message)
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
    c = await thread_for(
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
