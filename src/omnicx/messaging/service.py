"""Accepting a message: idempotency, channel choice, policies, rendering, the delivery log row.

:func:`submit` runs in the caller's transaction and decides everything that can be decided
before anything leaves: the row is written first (its idempotency key unique, so the same key
twice gives the same message and sends once), then the channel is chosen, consent, suppression,
caps and quiet hours are checked, and the content is rendered with the brand kit. The outcome is
``queued`` (due now, or at the end of quiet hours) or ``skipped`` with the reason; the delivery
loop (:mod:`omnicx.messaging.delivery`) takes it from there.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce import service as commerce
from omnicx.db import dialect_insert, row_id
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.messaging import events
from omnicx.messaging.brand import load_brand
from omnicx.messaging.choice import Choice, choose
from omnicx.messaging.models import Message, MessageTemplate
from omnicx.messaging.policies import cap_in, cap_reached, parse_window, quiet_until, zone_of
from omnicx.messaging.providers.base import Channel
from omnicx.messaging.schemas import BrandKit, TemplateWrite
from omnicx.messaging.signing import Links
from omnicx.messaging.templates import (
    RenderError,
    Tracking,
    render_content,
    variables_used,
    webhook_target,
)
from omnicx.profiles import service as profiles
from omnicx.profiles.internal import InternalEvent
from omnicx.profiles.record import rules_from
from omnicx.profiles.schemas import ProfileRead
from omnicx.settings import Settings


@dataclass(frozen=True)
class SendRequest:
    to: str
    message: str
    channel: str | Sequence[str] = "auto"
    data: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    quiet_hours: Literal["defer", "drop"] = "defer"


@dataclass(frozen=True)
class Submitted:
    message: Message
    created: bool


@dataclass
class Known:
    """What :func:`omnicx.messaging.batch.submit_many` loaded once for many messages, so each
    decision reads it instead of the database; the timeline events are collected, not written."""

    blocked: dict[tuple[str, str], str]  # suppressed addresses of the batch's customers
    scores: dict[str, dict[str, float]]  # profile → engagement per channel (``auto`` requests)
    counted: dict[str, list[tuple[str | None, datetime]]] | None  # profile → capped sends
    needed: dict[int, set[str]] = field(default_factory=dict)  # template id → variables
    events: list[InternalEvent] = field(default_factory=list)


async def get_template(session: AsyncSession, ref: str) -> MessageTemplate | None:
    """A template by id (digits) or by name."""
    if ref.isdigit():  # an id, never a name
        template_id = row_id(ref)
        return None if template_id is None else await session.get(MessageTemplate, template_id)
    return (
        await session.execute(select(MessageTemplate).where(MessageTemplate.name == ref))
    ).scalar_one_or_none()


async def template_context(
    session: AsyncSession,
    settings: Settings,
    *,
    profile: ProfileRead | None,
    brand: BrandKit,
    needed: set[str],
    data: Mapping[str, Any],
    event: Mapping[str, Any],
) -> dict[str, Any]:
    """Variables: ``profile`` (traits and id), ``traits``, ``event``, ``data``, ``brand`` and, when
    the template reads them, ``cart``, ``wishlist`` and ``last_order``."""
    traits = dict(profile.traits) if profile else {}
    context: dict[str, Any] = {
        "profile": {**traits, "id": profile.id if profile else None},
        "traits": traits,
        "data": dict(data),
        "event": dict(event),
        "brand": brand.model_dump(mode="json"),
    }
    if profile is None:
        return context
    if "cart" in needed:
        cart = await commerce.get_cart(session, profile_id=profile.id)
        context["cart"] = cart.model_dump(mode="json") if cart else None
    if "wishlist" in needed:
        items = await commerce.get_wishlist(session, profile_id=profile.id)
        context["wishlist"] = [i.model_dump(mode="json") for i in items]
    if "last_order" in needed:
        secret = settings.secret_key.get_secret_value()
        orders = await commerce.list_orders(session, profile_id=profile.id, limit=1, secret=secret)
        context["last_order"] = orders[0].model_dump(mode="json") if orders else None
    return context


async def submit(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    request: SendRequest,
    available: Mapping[str, Channel],
    now: datetime,
) -> Submitted:
    """Record the message and decide its fate; the same idempotency key returns the first."""
    key = request.idempotency_key or f"api.{uuid.uuid4().hex}"
    existing = await _by_key(session, key)
    if existing is not None:
        return Submitted(existing, created=False)
    template = await get_template(session, request.message)
    if template is None:
        raise ApiError(404, "template_not_found", f"no message template {request.message!r}")
    found = await profiles.get_by_external_id(
        session, external_id=request.to, rules=rules_from(settings)
    )
    if found is None:
        raise ApiError(404, "profile_not_found", f"no profile for {request.to!r}")
    profile = await profiles.read(session, profile=found)
    requested = request.channel if isinstance(request.channel, str) else ",".join(request.channel)
    message_id = await _insert(session, key, profile.id, template, requested, now)
    if message_id is None:  # the same key committed meanwhile on another connection
        existing = await _by_key(session, key)
        assert existing is not None
        return Submitted(existing, created=False)
    message = await session.get(Message, message_id)
    assert message is not None
    brand = await load_brand(session)
    await _decide(
        session, settings, hooks, message, template, profile, brand, request, available, now
    )
    return Submitted(message, created=True)


async def _by_key(session: AsyncSession, key: str) -> Message | None:
    return (
        await session.execute(select(Message).where(Message.idempotency_key == key))
    ).scalar_one_or_none()


async def _insert(
    session: AsyncSession,
    key: str,
    profile_id: str,
    template: MessageTemplate,
    requested: str,
    now: datetime,
) -> int | None:
    stmt = (
        dialect_insert(session, Message)
        .values(
            idempotency_key=key,
            profile_id=profile_id,
            template=template.name,
            category=template.category,
            topic=template.topic,
            requested=requested[:200],
            choice_reason="",
            status="queued",
            send_at=now,
            attempts=0,
            content={},
            data={},
            history=[],
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(Message.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _decide(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    message: Message,
    template: MessageTemplate,
    profile: ProfileRead,
    brand: BrandKit,
    request: SendRequest,
    available: Mapping[str, Channel],
    now: datetime,
    known: Known | None = None,
) -> None:
    message.data = {"data": request.data, "event": request.event}
    variants = template.variants
    needed = known.needed.get(template.id) if known is not None else None
    if needed is None:
        needed = set().union(*(variables_used(variants, c) for c in variants))
        if known is not None:
            known.needed[template.id] = needed
    context = await template_context(
        session,
        settings,
        profile=profile,
        brand=brand,
        needed=needed,
        data=request.data,
        event=request.event,
    )
    links = Links(settings)
    marketing = template.category == "marketing"
    if marketing:
        context["unsubscribe_url"] = links.unsubscribe_url(message.id)
    try:
        url = webhook_target(variants, context, brand) or settings.webhook_url
    except RenderError as exc:
        return await _finish(session, hooks, message, "failed", f"render: {exc}", now, known)
    choice: Choice = await choose(
        session,
        settings,
        profile=profile,
        requested=request.channel,
        variants=variants,
        category=template.category,
        topic=template.topic,
        available=available,
        webhook_url=url,
        now=now,
        blocked=known.blocked if known is not None else None,
        scores=known.scores.get(profile.id, {}) if known is not None else None,
    )
    message.choice_reason = choice.reason
    if choice.channel is None or choice.address is None:
        return await _finish(session, hooks, message, "skipped", choice.reason, now, known)
    message.channel, message.provider = choice.channel, choice.provider
    message.to = asdict(choice.address)
    if message.channel == "inapp":
        message.inbox_state = "unread"
    send_at = now
    if marketing:
        zone = zone_of(profile.traits, settings.messaging_default_timezone)
        if settings.messaging_quiet_hours and choice.channel in (
            settings.messaging_quiet_hours_channels
        ):
            until = quiet_until(now, zone, parse_window(settings.messaging_quiet_hours))
            if until is not None and request.quiet_hours == "drop":
                return await _finish(
                    session, hooks, message, "skipped", f"quiet hours ({zone.key})", now, known
                )
            send_at = until or now
        if known is not None and known.counted is not None:
            sends = known.counted.setdefault(profile.id, [])
            cap = cap_in(
                settings.messaging_caps, sends, channel=choice.channel, at=send_at, zone=zone
            )
        else:
            cap = await cap_reached(
                session,
                caps=settings.messaging_caps,
                profile_id=profile.id,
                channel=choice.channel,
                at=send_at,
                zone=zone,
                exclude=message.id,
            )
        if cap is not None:
            reason = f"frequency cap ({cap})"
            return await _finish(session, hooks, message, "skipped", reason, now, known)
    tracking = (
        Tracking(links, message.id, unsubscribe=marketing) if choice.channel == "email" else None
    )
    try:
        content = render_content(
            choice.channel,
            variants,
            context,
            brand,
            from_email=brand.from_email or settings.email_from,
            tracking=tracking,
        )
    except (RenderError, LookupError) as exc:
        return await _finish(session, hooks, message, "failed", f"render: {exc}", now, known)
    message.content = {"type": type(content).__name__, **asdict(content)}
    message.send_at = message.due_at = send_at
    deferred = send_at > now
    message.reason = f"deferred by quiet hours until {send_at.isoformat()}" if deferred else None
    message.history = [
        events.entry("queued", now, due_at=send_at.isoformat() if deferred else None)
    ]
    if known is not None:
        if marketing and known.counted is not None:  # counts for the batch's next messages
            known.counted.setdefault(profile.id, []).append((choice.channel, send_at))
        deferred_until = send_at.isoformat() if deferred else None
        change = events.internal_event(
            profile.id, message, "queued", now, deferred_until=deferred_until
        )
        known.events.append(change)
        return
    await events.record(
        session,
        hooks,
        profile_id=message.profile_id,
        message=message,
        status="queued",
        at=now,
        deferred_until=send_at.isoformat() if deferred else None,
    )


async def _finish(
    session: AsyncSession,
    hooks: Hooks,
    message: Message,
    status: str,
    reason: str,
    now: datetime,
    known: Known | None = None,
) -> None:
    message.status, message.reason, message.due_at = status, reason[:1000], None
    message.history = [*message.history, events.entry(status, now, reason=reason)]
    message.updated_at = now
    if known is not None and message.profile_id is not None:
        change = events.internal_event(message.profile_id, message, status, now, reason=reason)
        known.events.append(change)
        return
    await events.record(
        session,
        hooks,
        profile_id=message.profile_id,
        message=message,
        status=status,
        at=now,
        reason=reason,
    )


async def ensure_template(
    session: AsyncSession, *, name: str, template: TemplateWrite, now: datetime
) -> MessageTemplate:
    """The template ``name``, created from ``template`` if there is none: the built-in messages
    other capabilities ship (a conversation reply, a CSAT request) that a brand may then edit."""
    row = await get_template(session, name)
    if row is not None:
        return row
    await session.execute(
        dialect_insert(session, MessageTemplate)
        .values(
            name=name,
            description=template.description,
            category=template.category,
            topic=template.topic or template.category,
            variants=template.variants.model_dump(exclude_none=True),
            version=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = await get_template(session, name)
    assert row is not None
    return row
