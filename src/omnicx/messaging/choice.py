"""Channel choice: an explicit channel, a fallback chain, or ``auto``; the reason is stored.

A channel is *usable* for a message when the template has a variant for it, a provider is
configured, the customer has an address on it (the most recently seen email, phone, push token
or web-push subscription; in-app needs only the profile; webhooks the variant's or the default
URL), the address is not suppressed and consent allows it. A chain takes the first usable
channel; ``auto`` takes, among usable channels (webhooks excepted: they reach systems, not
people), the one the customer engages with most recently and most often: each open or click
counts ``0.5 ** (age in days / 30)`` (a 30-day half-life, so recency and frequency both weigh),
ties and customers with no engagement yet falling back to ``OMNICX_MESSAGING_AUTO_ORDER``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.messaging.models import Message
from omnicx.messaging.policies import consent_allows, suppressed
from omnicx.messaging.providers.base import Address, Channel
from omnicx.messaging.providers.registry import provider_for
from omnicx.messaging.templates import variant_for
from omnicx.profiles.schemas import ProfileRead
from omnicx.settings import Settings

HALF_LIFE_DAYS = 30.0
ENGAGEMENT_ROWS = 200
CONTACT_KIND = {"email": "email", "sms": "phone", "push": "push_token", "webpush": "webpush"}


@dataclass(frozen=True)
class Choice:
    channel: str | None
    address: Address | None
    provider: str | None
    reason: str  # why this channel, or why none


def address_for(profile: ProfileRead, channel: str, webhook_url: str | None) -> Address | None:
    if channel == "inapp":
        return Address("profile", profile.id)
    if channel == "webhook":
        return Address("url", webhook_url) if webhook_url else None
    kind = CONTACT_KIND[channel]
    points = sorted(
        (c for c in profile.contact_points if c.kind == kind),
        key=lambda c: c.last_seen,
        reverse=True,
    )
    if points:
        best = points[0]
        data: dict[str, Any] = dict(best.data)
        if kind == "push_token":
            data["platform"] = str(data.get("platform") or data.get("type") or "").lower()
        return Address(kind, best.value, data)  # type: ignore[arg-type]
    trait = profile.traits.get(kind)
    if kind in ("email", "phone") and isinstance(trait, str) and trait.strip():
        return Address(kind, trait.strip())  # type: ignore[arg-type]
    return None


async def engagement(session: AsyncSession, *, profile_id: str, now: datetime) -> dict[str, float]:
    rows = await session.execute(
        select(Message.channel, Message.opened_at, Message.clicked_at)
        .where(
            Message.profile_id == profile_id,
            or_(Message.opened_at.is_not(None), Message.clicked_at.is_not(None)),
        )
        .order_by(Message.id.desc())
        .limit(ENGAGEMENT_ROWS)
    )
    scores: dict[str, float] = {}
    for channel, opened, clicked in rows:
        for when in (opened, clicked):
            if when is not None and channel:
                age = max(0.0, (now - when).total_seconds() / 86400)
                scores[channel] = scores.get(channel, 0.0) + 0.5 ** (age / HALF_LIFE_DAYS)
    return scores


async def choose(
    session: AsyncSession,
    settings: Settings,
    *,
    profile: ProfileRead,
    requested: str | Sequence[str],
    variants: Mapping[str, Any],
    category: str,
    topic: str,
    available: Mapping[str, Channel],
    webhook_url: str | None,
    now: datetime,
    blocked: Mapping[tuple[str, str], str] | None = None,
    scores: Mapping[str, float] | None = None,
) -> Choice:
    """The channel to send on, or why there is none. ``blocked`` (suppressed addresses) and
    ``scores`` (engagement) may come loaded for many messages at once; else they are read."""
    auto = requested == "auto"
    if auto:
        order = [c for c in settings.messaging_auto_order if c != "webhook"]
        order += [c.value for c in Channel if c.value not in order and c != Channel.webhook]
    else:
        order = [requested] if isinstance(requested, str) else list(requested)
    consents = {(c.channel, c.topic): c.status for c in profile.consents}
    candidates: dict[str, tuple[Address, str]] = {}
    refusals: list[str] = []
    for channel in order:
        if variant_for(dict(variants), channel) is None:
            refusals.append(f"{channel}: no variant")
            continue
        address = address_for(profile, channel, webhook_url)
        platform = address.data.get("platform") if address is not None else None
        provider = provider_for(channel, platform, available)
        if provider is None:
            refusals.append(f"{channel}: no provider")
            continue
        if address is None:
            refusals.append(f"{channel}: no address")
            continue
        ok, why = consent_allows(
            consents,
            channel=channel,
            topic=topic,
            category=category,
            implied=settings.messaging_implied_consent,
        )
        if not ok:
            refusals.append(f"{channel}: {why}")
            continue
        candidates[channel] = (address, provider)
    if blocked is None:
        blocked = await suppressed(
            session,
            settings,
            [(a.kind, a.value) for a, _ in candidates.values() if a.kind not in ("profile", "url")],
        )
    usable = []
    for channel in order:
        if channel not in candidates:
            continue
        address, provider = candidates[channel]
        reason = blocked.get((address.kind, address.value))
        if reason is not None:
            refusals.append(f"{channel}: address suppressed ({reason})")
            continue
        usable.append(channel)
    if not usable:
        return Choice(None, None, None, "; ".join(refusals) or "no channel")
    if not auto:
        chosen = usable[0]
        why = "requested" if len(order) == 1 else "first usable in chain"
    else:
        if scores is None:
            scores = await engagement(session, profile_id=profile.id, now=now)
        chosen = max(usable, key=lambda c: (round(scores.get(c, 0.0), 6), -order.index(c)))
        score = scores.get(chosen, 0.0)
        why = (
            f"auto: most engaged ({score:.2f})"
            if score > 0
            else "auto: no engagement yet, by order"
        )
    skipped = [r for r in refusals if order.index(r.split(":")[0]) < order.index(chosen)]
    if skipped:
        why += " after " + "; ".join(skipped)
    address, provider = candidates[chosen]
    return Choice(chosen, address, provider, why[:1000])
