"""Send-time policies: consent, the suppression list, frequency caps and quiet hours.

Choices made where the issue is silent:

- **Consent** is looked up most specific first: the (channel, topic) row decides if there is
  one; otherwise any denial among (channel, all), (all, topic), (all, all) stops the message and
  any grant among them lets it through. With nothing recorded, marketing does not go (the
  non-negotiable "no message without consent"), except on channels listed in
  ``OMNICX_MESSAGING_IMPLIED_CONSENT``. Transactional messages skip consent (they are not
  marketing) and caps and quiet hours, but never the suppression list.
- **Timezone**: the ``timezone`` trait (an IANA name such as ``Europe/Oslo``); a missing or
  unknown one falls back to ``OMNICX_MESSAGING_DEFAULT_TIMEZONE`` (default UTC).
- **Caps** count marketing messages that were or will be sent (queued, sending, sent and
  later states; not skipped or failed) by the local day or ISO week (Monday) in which they are
  sent, so a message deferred past midnight counts on the next day. ``all`` caps every channel
  together.
- **Quiet hours** (``OMNICX_MESSAGING_QUIET_HOURS``, e.g. ``21:00-08:00`` local) apply to the
  channels in ``OMNICX_MESSAGING_QUIET_HOURS_CHANNELS``. A message inside them is deferred to the
  window's local end (DST-aware: 08:00 is 08:00 on the wall clock on the day clocks change) or
  dropped, as the message asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import dialect_insert
from omnicx.messaging.models import Message, MessageSuppression
from omnicx.messaging.signing import address_hash
from omnicx.settings import Settings

COUNTED = ("queued", "sending", "sent", "delivered", "opened", "clicked", "bounced")
Consents = Mapping[tuple[str, str], str]
Caps = Mapping[str, Mapping[Literal["day", "week"], int]]


def consent_allows(
    consents: Consents, *, channel: str, topic: str, category: str, implied: Iterable[str]
) -> tuple[bool, str]:
    """Whether the message may go, and why."""
    if category == "transactional":
        return True, "transactional"
    exact = consents.get((channel, topic))
    if exact is not None:
        return exact == "granted", f"consent {channel}/{topic} {exact}"
    wider = ((channel, "all"), ("all", topic), ("all", "all"))
    broader = [(k, consents[k]) for k in wider if k in consents]
    for (c, t), status in broader:
        if status == "denied":
            return False, f"consent {c}/{t} denied"
    for (c, t), status in broader:
        if status == "granted":
            return True, f"consent {c}/{t} granted"
    if channel in implied:
        return True, f"consent implied on {channel}"
    return False, f"no consent for {channel}/{topic}"


def zone_of(traits: Mapping[str, object], default: str) -> ZoneInfo:
    name = traits.get("timezone")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(default)


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as an aware UTC instant (a time skipped by DST lands after it)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def parse_window(text: str) -> tuple[time, time]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def quiet_until(now: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime | None:
    """The end of the quiet window ``now`` falls in (UTC), or ``None`` outside it."""
    start, end = window
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside or start == end:
        return None
    day = local.date()
    if not (start < end) and t >= start:
        day += timedelta(days=1)
    return _local(day, end, zone)


def periods(at: datetime, zone: ZoneInfo) -> dict[str, tuple[datetime, datetime]]:
    """The local day and ISO week containing ``at``, as UTC ``[start, end)``."""
    day = at.astimezone(zone).date()
    monday = day - timedelta(days=day.weekday())
    return {
        "day": (_local(day, time(0), zone), _local(day + timedelta(days=1), time(0), zone)),
        "week": (_local(monday, time(0), zone), _local(monday + timedelta(days=7), time(0), zone)),
    }


async def cap_reached(
    session: AsyncSession,
    *,
    caps: Caps,
    profile_id: str,
    channel: str,
    at: datetime,
    zone: ZoneInfo,
    exclude: int | None = None,
) -> str | None:
    """The cap a marketing message sent at ``at`` would exceed, e.g. ``email: 2 per day``
    (``exclude``: the message being decided, already in the log)."""
    relevant = {k: v for k, v in caps.items() if k in (channel, "all") and v}
    if not relevant:
        return None
    spans = periods(at, zone)
    lo = min(s for s, _ in spans.values())
    hi = max(e for _, e in spans.values())
    rows = (
        await session.execute(
            select(Message.channel, Message.send_at).where(
                Message.profile_id == profile_id,
                Message.category == "marketing",
                Message.status.in_(COUNTED),
                Message.send_at >= lo,
                Message.send_at < hi,
                Message.id != (exclude or 0),
            )
        )
    ).all()
    return cap_in(caps, [(ch, when) for ch, when in rows], channel=channel, at=at, zone=zone)


def cap_in(
    caps: Caps,
    sends: Sequence[tuple[str | None, datetime]],
    *,
    channel: str,
    at: datetime,
    zone: ZoneInfo,
) -> str | None:
    """:func:`cap_reached` over the customer's counted marketing sends ``(channel, send_at)``
    already in hand (a batch loads them once for many messages)."""
    relevant = {k: v for k, v in caps.items() if k in (channel, "all") and v}
    spans = periods(at, zone)
    for scope, limits in sorted(relevant.items()):
        for period, limit in sorted(limits.items()):
            start, end = spans[period]
            sent = sum(1 for ch, when in sends if start <= when < end and scope in ("all", ch))
            if sent >= limit:
                return f"{scope}: {limit} per {period}"
    return None


def normalise_address(kind: str, value: str) -> str:
    return value.strip().lower() if kind == "email" else value.strip()


async def suppressed(
    session: AsyncSession, settings: Settings, addresses: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Which of the ``(kind, value)`` addresses are on the suppression list, with the reason."""
    keys = {
        address_hash(settings, kind, normalise_address(kind, value)): (kind, value)
        for kind, value in addresses
    }
    if not keys:
        return {}
    rows = await session.execute(
        select(MessageSuppression.key_hash, MessageSuppression.reason).where(
            MessageSuppression.key_hash.in_(list(keys))
        )
    )
    return {keys[h]: reason for h, reason in rows}


async def suppress(
    session: AsyncSession,
    settings: Settings,
    *,
    kind: str,
    value: str,
    reason: str,
    detail: str = "",
    now: datetime,
) -> None:
    """Put an address on the suppression list (idempotent)."""
    await session.execute(
        dialect_insert(session, MessageSuppression)
        .values(
            key_hash=address_hash(settings, kind, normalise_address(kind, value)),
            kind=kind,
            reason=reason,
            detail=detail[:2000],
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key_hash"])
    )
