"""Reading profiles, changing consent, exporting and erasing a person.

Erasure (GDPR art. 17) removes the person's personal data from every table and keeps anonymised
aggregates: event rows stay with their type, name, channel, source and times (so counts per day
still add up) but lose the profile link, ids, properties, traits and context; the profile row
keeps its per-channel counts and loses its traits. Each identifier is kept only as a keyed hash
(HMAC with ``OMNICX_SECRET_KEY``) in ``suppressions``, so later events for the person are refused
and counted, not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import source_names
from omnicx.db import dialect_insert, utcnow
from omnicx.hooks import Hooks
from omnicx.profiles.identity import IdentityRules
from omnicx.profiles.models import (
    Consent,
    ContactPoint,
    Event,
    Identity,
    Merge,
    Profile,
    Suppression,
)
from omnicx.profiles.record import iso, suppression_hash, upsert_consents
from omnicx.profiles.schemas import (
    ConsentRead,
    ConsentUpdate,
    ContactPointRead,
    ErasureResult,
    EventRead,
    IdentityRead,
    ProfileExport,
    ProfileRead,
    ProfileSummary,
    TimelinePage,
)

CURSOR_SEP = "~"


async def get_by_external_id(
    session: AsyncSession, *, external_id: str, rules: IdentityRules
) -> Profile | None:
    """``user_id:…``, ``anonymous_id:…``, ``email:…``, ``phone:…``, ``<type>:…`` or a profile id."""
    id_type, sep, value = external_id.partition(":")
    profile_id: str | None
    if sep:
        ident = rules.normalise(id_type, value)
        if ident is None:
            return None
        profile_id = (
            await session.execute(
                select(Identity.profile_id).where(
                    Identity.type == ident[0], Identity.value == ident[1]
                )
            )
        ).scalar_one_or_none()
    else:
        profile_id = external_id
    seen: set[str] = set()
    while profile_id is not None and profile_id not in seen:
        seen.add(profile_id)
        profile = await session.get(Profile, profile_id)
        if profile is None or profile.erased_at is not None:
            return None
        if profile.merged_into is None:
            return profile
        profile_id = profile.merged_into
    return None


async def read(session: AsyncSession, *, profile: Profile) -> ProfileRead:
    identities = await _identities(session, [profile.id])
    consents = (
        await session.execute(
            select(Consent)
            .where(Consent.profile_id == profile.id)
            .order_by(Consent.channel, Consent.topic)
        )
    ).scalars()
    contacts = (
        await session.execute(
            select(ContactPoint)
            .where(ContactPoint.profile_id == profile.id)
            .order_by(ContactPoint.kind, ContactPoint.id)
        )
    ).scalars()
    merged = (
        await session.execute(select(Profile.id).where(Profile.merged_into == profile.id))
    ).scalars()
    return ProfileRead(
        id=profile.id,
        traits=profile.traits,
        identities=identities.get(profile.id, []),
        consents=[
            ConsentRead(
                channel=c.channel,
                topic=c.topic,
                status=c.status,
                source=c.source,
                updated_at=c.updated_at,
            )
            for c in consents
        ],
        contact_points=[
            ContactPointRead(kind=c.kind, value=c.value, data=c.data, last_seen=c.last_seen)
            for c in contacts
        ],
        channels=profile.channels,
        first_seen=profile.first_seen,
        last_seen=profile.last_seen,
        merged_from=sorted(merged),
    )


async def _identities(
    session: AsyncSession, profile_ids: Sequence[str]
) -> dict[str, list[IdentityRead]]:
    result = await session.execute(
        select(Identity.profile_id, Identity.type, Identity.value)
        .where(Identity.profile_id.in_(profile_ids))
        .order_by(Identity.id)
    )
    out: dict[str, list[IdentityRead]] = {}
    for pid, t, v in result:
        out.setdefault(pid, []).append(IdentityRead(type=t, value=v))
    return out


def parse_cursor(before: str) -> tuple[datetime, int | None]:
    """A ``next`` cursor from an earlier page, or a plain ISO timestamp."""
    stamp, _, event_id = before.partition(CURSOR_SEP)
    when = datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        raise ValueError("a timestamp needs a timezone")
    return when, int(event_id) if event_id else None


async def timeline(
    session: AsyncSession,
    *,
    profile_id: str,
    limit: int,
    before: tuple[datetime, int | None] | None = None,
    event_type: str | None = None,
    event_name: str | None = None,
) -> TimelinePage:
    stmt = select(Event).where(Event.profile_id == profile_id)
    if before is not None:
        when, event_id = before
        if event_id is None:
            stmt = stmt.where(Event.timestamp < when)
        else:
            stmt = stmt.where(
                or_(Event.timestamp < when, and_(Event.timestamp == when, Event.id < event_id))
            )
    if event_type:
        stmt = stmt.where(Event.type == event_type)
    if event_name:
        stmt = stmt.where(Event.event == event_name)
    stmt = stmt.order_by(Event.timestamp.desc(), Event.id.desc()).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    items = await _event_reads(session, page)
    last = page[-1] if len(rows) > limit else None
    return TimelinePage(
        items=items, next=f"{iso(last.timestamp)}{CURSOR_SEP}{last.id}" if last else None
    )


async def _event_reads(session: AsyncSession, events: Sequence[Event]) -> list[EventRead]:
    names = await source_names(session, ids={e.source_id for e in events})
    return [
        EventRead(
            id=e.id,
            message_id=e.message_id,
            type=e.type,
            event=e.event,
            channel=e.channel,
            timestamp=e.timestamp,
            received_at=e.received_at,
            properties=e.properties,
            traits=e.traits,
            context=e.context,
            source=names.get(e.source_id, str(e.source_id)),
        )
        for e in events
    ]


async def search(
    session: AsyncSession, *, q: str, rules: IdentityRules, limit: int
) -> list[ProfileSummary]:
    """Profiles whose identifier starts with ``q`` (or equals it normalised), or whose traits
    contain it."""
    q = q.strip()
    exact = [ident for t in ("email", "phone") if (ident := rules.normalise(t, q)) is not None]
    pattern = _like_escape(q) + "%"
    id_match = select(Identity.profile_id).where(
        or_(
            Identity.value.like(pattern, escape="\\"),
            *[and_(Identity.type == t, Identity.value == v) for t, v in exact],
        )
    )
    trait_match = select(Profile.id).where(
        cast(Profile.traits, String).ilike("%" + _like_escape(q) + "%", escape="\\")
    )
    stmt = (
        select(Profile)
        .where(
            Profile.merged_into.is_(None),
            Profile.erased_at.is_(None),
            or_(Profile.id.in_(id_match), Profile.id.in_(trait_match), Profile.id == q),
        )
        .order_by(Profile.last_seen.desc())
        .limit(limit)
    )
    profiles = list((await session.execute(stmt)).scalars())
    identities = await _identities(session, [p.id for p in profiles])
    return [
        ProfileSummary(
            id=p.id, traits=p.traits, identities=identities.get(p.id, []), last_seen=p.last_seen
        )
        for p in profiles
    ]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def change_consent(
    session: AsyncSession, *, profile: Profile, update_: ConsentUpdate, actor: str, hooks: Hooks
) -> None:
    now = utcnow()
    await upsert_consents(
        session,
        [
            {
                "profile_id": profile.id,
                "channel": c.channel,
                "topic": c.topic,
                "status": c.status,
                "source": f"{update_.source} ({actor})"[:200],
                "updated_at": now,
            }
            for c in update_.consents
        ],
    )
    await hooks.changed(session, {profile.id: {"consent": True}})


async def export(session: AsyncSession, *, profile: Profile) -> ProfileExport:
    events = list(
        (
            await session.execute(
                select(Event)
                .where(Event.profile_id == profile.id)
                .order_by(Event.timestamp, Event.id)
            )
        ).scalars()
    )
    merges = (
        await session.execute(
            select(Merge).where(
                or_(Merge.into_profile_id == profile.id, Merge.from_profile_id == profile.id)
            )
        )
    ).scalars()
    return ProfileExport(
        profile=await read(session, profile=profile),
        events=await _event_reads(session, events),
        merges=[
            {
                "into_profile_id": m.into_profile_id,
                "from_profile_id": m.from_profile_id,
                "message_id": m.message_id,
                "linked_by": m.linked_by,
                "merged_at": m.merged_at,
            }
            for m in merges
        ],
    )


async def erase(
    session: AsyncSession, *, profile: Profile, secret: str, hooks: Hooks
) -> ErasureResult:
    """Remove the person's personal data everywhere; suppress their identifiers."""
    folded = list(
        (
            await session.execute(select(Profile.id).where(Profile.merged_into == profile.id))
        ).scalars()
    )
    ids = [profile.id, *folded]
    identities = list(
        (
            await session.execute(
                select(Identity.type, Identity.value).where(Identity.profile_id.in_(ids))
            )
        ).all()
    )
    contacts = list(
        (
            await session.execute(
                select(ContactPoint.kind, ContactPoint.value).where(
                    ContactPoint.profile_id.in_(ids)
                )
            )
        ).all()
    )
    suppress = {(t, v) for t, v in identities} | {(k, v) for k, v in contacts}
    if suppress:
        rows: list[dict[str, Any]] = [
            {
                "key_hash": suppression_hash(secret, ident),
                "identifier_type": ident[0],
                "refused_count": 0,
                "created_at": utcnow(),
            }
            for ident in sorted(suppress)
        ]
        await session.execute(
            dialect_insert(session, Suppression).on_conflict_do_nothing(
                index_elements=["key_hash"]
            ),
            rows,
        )
    events = await session.execute(
        update(Event)
        .where(Event.profile_id.in_(ids))
        .values(
            profile_id=None, user_id=None, anonymous_id=None, properties={}, traits={}, context={}
        )
    )
    for model in (Identity, ContactPoint, Consent):
        await session.execute(delete(model).where(model.profile_id.in_(ids)))
    await hooks.erased(session, ids)
    await session.execute(
        update(Profile)
        .where(Profile.id.in_(ids))
        .values(traits={}, trait_times={}, erased_at=utcnow())
    )
    return ErasureResult(
        profile_id=profile.id,
        profiles_erased=len(ids),
        identifiers_suppressed=len(suppress),
        events_anonymised=events.rowcount or 0,  # type: ignore[attr-defined]
    )


async def prune_events(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` raw events that happened before ``before`` (retention); what was
    derived from them (traits, orders, memberships, computed traits) stays. Oldest ids first,
    skipping rows another worker holds."""
    doomed = (
        select(Event.id)
        .where(Event.timestamp < before)
        .order_by(Event.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(doomed)).scalars())
    if ids:
        await session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)
