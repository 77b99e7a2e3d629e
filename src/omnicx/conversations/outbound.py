"""Reaching the customer where she is now, links back into the thread, and the CSAT request.

A reply (agent, bot or system) to a customer whose widget or app is connected
(``customer_seen_at`` within ``OMNICX_CONVERSATIONS_PRESENCE_SECONDS``, kept fresh by the socket)
is shown live and marked ``live``. Otherwise it goes through Messaging (consent, suppression,
idempotency key ``conversation.<message id>``, so a retried request sends once) with the
template ``OMNICX_CONVERSATIONS_REPLY_TEMPLATE``, by the channel she last wrote on when that
is SMS or email, else her ``preferred_channel`` trait, else the first usable of push, web push,
SMS and email. The message carries a signed link back into the same thread (``/c/t/<token>``).

Links are ``<conversation id>.<profile id>.<expiry>.<signature>``: an HMAC-SHA256 (128 bits kept)
under a key derived from ``OMNICX_SECRET_KEY`` for this purpose alone, valid
``OMNICX_CONVERSATIONS_LINK_DAYS``. Whoever holds the link may continue that thread (it went to
her phone or mailbox), as with a magic sign-in link; it does not unlock order answers.

The reply and CSAT templates are created with the defaults below the first time they are needed;
a brand edits them like any other template (``PUT /api/templates/conversation-reply``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.conversations.models import Conversation, ConversationMessage
from omnicx.hooks import Hooks
from omnicx.messaging import service as messaging
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.schemas import TemplateWrite
from omnicx.messaging.signing import derive
from omnicx.profiles import service as profiles
from omnicx.profiles.record import rules_from
from omnicx.settings import Settings

REPLY_TEMPLATE: dict[str, Any] = {
    "description": "An answer in a conversation, for a customer who is not in the chat now.",
    "category": "transactional",
    "topic": "conversations",
    "variants": {
        "push": {
            "title": "{{ data.author }} replied",
            "body": "{{ data.body | truncate: 150 }}",
            "deep_link": "{{ data.link }}",
        },
        "sms": {"text": "{{ data.author }}: {{ data.body | truncate: 300 }} {{ data.link }}"},
        "email": {
            "subject": "{{ data.author }} replied to your message",
            "html": "<p>{{ data.body | escape | newline_to_br }}</p>"
            '<p><a href="{{ data.link }}">Continue the conversation</a></p>',
        },
        "inapp": {
            "title": "{{ data.author }} replied",
            "body": "{{ data.body | truncate: 300 }}",
            "link": "{{ data.link }}",
        },
    },
}
CSAT_TEMPLATE: dict[str, Any] = {
    "description": "The satisfaction question after a conversation is resolved.",
    "category": "transactional",
    "topic": "conversations",
    "variants": {
        "push": {
            "title": "How did we do?",
            "body": "Rate your conversation with {{ data.agent }}.",
            "deep_link": "{{ data.link }}",
        },
        "sms": {
            "text": "How did we do? Reply with a number from 1 (poor) to 5 (great), or rate "
            "here: {{ data.link }}"
        },
        "email": {
            "subject": "How did we do?",
            "html": "<p>How was your conversation with {{ data.agent }}?</p><p>"
            '{% for s in (1..5) %}<a href="{{ data.link }}?score={{ s }}">{{ s }}</a> '
            "{% endfor %}</p>",
        },
        "inapp": {
            "title": "How did we do?",
            "body": "Rate your conversation with {{ data.agent }}.",
            "link": "{{ data.link }}",
        },
    },
}
CHAINS = {
    "sms": ["sms", "push", "webpush", "email"],
    "email": ["email", "push", "webpush", "sms"],
}
DEFAULT_CHAIN = ["push", "webpush", "sms", "email"]
PREFERABLE = ("push", "webpush", "sms", "email", "inapp")


# --- signed links --------------------------------------------------------------------------


def _key(settings: Settings) -> bytes:
    return derive(settings, "omnicx.conversations.links")


def _sig(settings: Settings, purpose: str, text: str) -> str:
    mac = hmac.new(_key(settings), f"{purpose}:{text}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make_token(settings: Settings, purpose: str, conversation: Conversation, now: datetime) -> str:
    expiry = int((now + timedelta(days=settings.conversations_link_days)).timestamp())
    head = f"{conversation.id}.{conversation.profile_id}.{expiry}"
    return f"{head}.{_sig(settings, purpose, head)}"


@dataclass(frozen=True)
class LinkClaim:
    conversation_id: int
    profile_id: str


def read_token(settings: Settings, purpose: str, token: str, now: datetime) -> LinkClaim | None:
    """What a link was made for, or ``None`` if it is not ours or has expired."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    head = ".".join(parts[:3])
    if not hmac.compare_digest(_sig(settings, purpose, head), parts[3]):
        return None
    if int(parts[2]) < now.timestamp():
        return None
    return LinkClaim(int(parts[0]), parts[1])


def thread_url(settings: Settings, conversation: Conversation, now: datetime) -> str:
    return f"{settings.public_url.rstrip('/')}/c/t/{make_token(settings, 't', conversation, now)}"


def csat_url(settings: Settings, conversation: Conversation, now: datetime) -> str:
    token = make_token(settings, "s", conversation, now)
    return f"{settings.public_url.rstrip('/')}/c/csat/{token}"


# --- sending through messaging -------------------------------------------------------------


def customer_online(settings: Settings, conversation: Conversation, now: datetime) -> bool:
    seen = conversation.customer_seen_at
    return seen is not None and (now - seen).total_seconds() < (
        settings.conversations_presence_seconds
    )


async def _chain(
    session: AsyncSession, settings: Settings, conversation: Conversation
) -> list[str]:
    chain = list(CHAINS.get(conversation.channel, DEFAULT_CHAIN))
    if conversation.channel not in CHAINS:
        found = await profiles.get_by_external_id(
            session, external_id=conversation.profile_id, rules=rules_from(settings)
        )
        preferred = found.traits.get("preferred_channel") if found else None
        if isinstance(preferred, str) and preferred in PREFERABLE:
            chain = [preferred, *[c for c in chain if c != preferred]]
    return chain


async def _send(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    template_name: str,
    template: dict[str, Any],
    key: str,
    data: dict[str, Any],
    now: datetime,
) -> messaging.Submitted:
    await messaging.ensure_template(
        session, name=template_name, template=TemplateWrite.model_validate(template), now=now
    )
    return await messaging.submit(
        session,
        settings,
        hooks,
        request=messaging.SendRequest(
            to=conversation.profile_id,
            message=template_name,
            channel=await _chain(session, settings, conversation),
            data=data,
            idempotency_key=key,
        ),
        available=configured(settings),
        now=now,
    )


async def deliver(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    message: ConversationMessage,
    now: datetime,
    answering: bool = False,
) -> None:
    """Get a reply to the customer: live if she is connected, else through Messaging.
    ``answering``: a reply to what she wrote this very moment in the widget or app (the bot's
    answer, the away message), which she reads in the response to her own message."""
    live = conversation.channel in ("web", "inapp") and (
        answering or customer_online(settings, conversation, now)
    )
    if live:
        message.delivery = "live"
        return
    submitted = await _send(
        session,
        settings,
        hooks,
        conversation=conversation,
        template_name=settings.conversations_reply_template,
        template=REPLY_TEMPLATE,
        key=f"conversation.{message.id}",
        data={
            "body": message.body,
            "author": message.author_name or "We",
            "link": thread_url(settings, conversation, now),
            "conversation_id": conversation.id,
        },
        now=now,
    )
    sent = submitted.message
    message.delivery = "queued" if sent.status == "queued" else "failed"
    message.delivery_message_id = sent.id


async def request_csat(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    conversation: Conversation,
    now: datetime,
) -> int:
    """Ask for a CSAT score on the customer's channel; the messaging row's id."""
    submitted = await _send(
        session,
        settings,
        hooks,
        conversation=conversation,
        template_name=settings.conversations_csat_template,
        template=CSAT_TEMPLATE,
        key=f"conversation.{conversation.id}.csat.{int(now.timestamp())}",
        data={
            "agent": conversation.assignee or "us",
            "link": csat_url(settings, conversation, now),
            "conversation_id": conversation.id,
        },
        now=now,
    )
    return submitted.message.id
