"""Accepting many messages at once: :func:`submit` for a batch (a journey's due sends).

Every message gets exactly the checks and the outcome :func:`omnicx.messaging.service.submit`
gives it (idempotency, channel choice, consent, suppression, caps, quiet hours, rendering, the
same code decides), but what the decisions read is loaded once per batch: the messages already
there for the batch's idempotency keys, templates, profiles with their consents and contact
points, suppressed addresses, engagement (for ``auto``), the customers' counted marketing sends
(for caps, the batch's own messages counted as they are decided) and the brand kit. Message rows
are inserted in one statement, updated by the unit of work's batched flush, and their timeline
events written with one :func:`omnicx.profiles.internal.record_internal_many`.

A request that cannot be accepted (unknown template or customer) gets its :class:`ApiError` in
its place in the result; the others go on. The same idempotency key twice in one batch, or a key
committed meanwhile on another connection, gives the message already there (``created=False``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import dialect_insert
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.messaging.brand import load_brand
from omnicx.messaging.choice import CONTACT_KIND, ENGAGEMENT_ROWS, HALF_LIFE_DAYS, address_for
from omnicx.messaging.models import Message, MessageTemplate
from omnicx.messaging.policies import COUNTED, suppressed
from omnicx.messaging.providers.base import Channel
from omnicx.messaging.service import Known, SendRequest, Submitted, _decide, get_template
from omnicx.profiles import service as profiles
from omnicx.profiles.internal import record_internal_many
from omnicx.profiles.models import Consent, ContactPoint, Profile
from omnicx.profiles.record import chunks, rules_from
from omnicx.profiles.schemas import ConsentRead, ContactPointRead, ProfileRead
from omnicx.settings import Settings

Outcome = Submitted | ApiError
CAP_LOOKBACK = timedelta(days=8)  # the widest cap period (a local ISO week) and a day of zones


async def submit_many(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    requests: Sequence[SendRequest],
    available: Mapping[str, Channel],
    now: datetime,
) -> list[Outcome]:
    """Record the messages and decide their fate, in request order."""
    keys = [r.idempotency_key or f"api.{uuid.uuid4().hex}" for r in requests]
    out: list[Outcome | None] = [None] * len(requests)
    found = await _by_keys(session, keys)
    first: dict[str, int] = {}
    todo: list[int] = []
    for i, key in enumerate(keys):
        if key in found:
            out[i] = Submitted(found[key], created=False)
        elif key not in first:
            first[key] = i
            todo.append(i)
    templates = await _templates(session, {requests[i].message for i in todo})
    owners = await _owners(session, settings, {requests[i].to for i in todo})
    accepted: list[int] = []
    for i in todo:
        request = requests[i]
        if templates.get(request.message) is None:
            out[i] = ApiError(404, "template_not_found", f"no message template {request.message!r}")
        elif owners.get(request.to) is None:
            out[i] = ApiError(404, "profile_not_found", f"no profile for {request.to!r}")
        else:
            accepted.append(i)
    if accepted:
        await _accept(
            session,
            settings,
            hooks,
            requests,
            keys,
            accepted,
            templates,
            owners,
            available,
            now,
            out,
        )
    for i, key in enumerate(keys):  # a key repeated in the batch: the message its first made
        if out[i] is None:
            earlier = out[first[key]]
            out[i] = (
                Submitted(earlier.message, created=False)
                if isinstance(earlier, Submitted)
                else earlier
            )
    return [o for o in out if o is not None]


async def _accept(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    requests: Sequence[SendRequest],
    keys: list[str],
    accepted: list[int],
    templates: dict[str, MessageTemplate | None],
    owners: dict[str, Profile | None],
    available: Mapping[str, Channel],
    now: datetime,
    out: list[Outcome | None],
) -> None:
    owner_ids = sorted({p.id for i in accepted if (p := owners[requests[i].to]) is not None})
    reads = await _reads(
        session, [p for p in owners.values() if p is not None and p.id in owner_ids]
    )
    marketing = any(t is not None and t.category == "marketing" for t in templates.values())
    counted = (
        await _counted(session, owner_ids, now) if marketing and settings.messaging_caps else None
    )
    auto = sorted(
        {_owner_id(owners, requests[i].to) for i in accepted if requests[i].channel == "auto"}
    )
    known = Known(
        blocked=await _blocked(session, settings, reads.values()),
        scores=await _engagement(session, auto, now),
        counted=counted,
    )
    rows = []
    for i in accepted:
        request, template = requests[i], templates[requests[i].message]
        assert template is not None
        requested = (
            request.channel if isinstance(request.channel, str) else ",".join(request.channel)
        )
        rows.append(
            {
                "idempotency_key": keys[i],
                "profile_id": _owner_id(owners, request.to),
                "template": template.name,
                "category": template.category,
                "topic": template.topic,
                "requested": requested[:200],
                "choice_reason": "",
                "status": "queued",
                "send_at": now,
                "attempts": 0,
                "content": {},
                "data": {},
                "history": [],
                "created_at": now,
                "updated_at": now,
            }
        )
    inserted: dict[str, int] = {}
    table = cast(Table, Message.__table__)
    stmt = (
        dialect_insert(session, table)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(table.c.id, table.c.idempotency_key)
    )
    for part in chunks(rows, 500):
        for row in (await session.execute(stmt, list(part))).all():
            inserted[row.idempotency_key] = row.id
    messages = {
        m.idempotency_key: m
        for part in chunks(sorted(inserted.values()), 500)
        for m in (await session.execute(select(Message).where(Message.id.in_(part)))).scalars()
    }
    meanwhile = await _by_keys(session, [keys[i] for i in accepted if keys[i] not in inserted])
    brand = await load_brand(session)
    for i in accepted:
        request, key = requests[i], keys[i]
        if key not in inserted:  # the same key committed meanwhile on another connection
            out[i] = Submitted(meanwhile[key], created=False)
            continue
        message, template = messages[key], templates[request.message]
        assert template is not None
        profile = reads[_owner_id(owners, request.to)]
        await _decide(
            session,
            settings,
            hooks,
            message,
            template,
            profile,
            brand,
            request,
            available,
            now,
            known,
        )
        out[i] = Submitted(message, created=True)
    await record_internal_many(session, known.events, hooks=hooks)


def _owner_id(owners: dict[str, Profile | None], to: str) -> str:
    profile = owners[to]
    assert profile is not None
    return profile.id


async def _by_keys(session: AsyncSession, keys: Sequence[str]) -> dict[str, Message]:
    out: dict[str, Message] = {}
    for part in chunks(sorted(set(keys)), 500):
        stmt = select(Message).where(Message.idempotency_key.in_(part))
        out.update({m.idempotency_key: m for m in (await session.execute(stmt)).scalars()})
    return out


async def _templates(session: AsyncSession, refs: set[str]) -> dict[str, MessageTemplate | None]:
    names = sorted(r for r in refs if not r.isdigit())
    by_name: dict[str, MessageTemplate] = {}
    if names:
        stmt = select(MessageTemplate).where(MessageTemplate.name.in_(names))
        by_name = {t.name: t for t in (await session.execute(stmt)).scalars()}
    return {
        ref: (await get_template(session, ref)) if ref.isdigit() else by_name.get(ref)
        for ref in refs
    }


async def _owners(
    session: AsyncSession, settings: Settings, refs: set[str]
) -> dict[str, Profile | None]:
    """Each recipient's live profile: profile ids in a query or two (following merges), other
    references (``user_id:…``) one by one as :func:`submit` reads them."""
    out: dict[str, Profile | None] = {}
    rules = rules_from(settings)
    for ref in sorted(r for r in refs if ":" in r):
        out[ref] = await profiles.get_by_external_id(session, external_id=ref, rules=rules)
    loaded: dict[str, Profile] = {}
    wanted = {r for r in refs if ":" not in r}
    while wanted:
        stmt = select(Profile).where(Profile.id.in_(sorted(wanted)))
        rows = list((await session.execute(stmt)).scalars())
        loaded.update({p.id: p for p in rows})
        wanted = {p.merged_into for p in rows if p.merged_into and p.merged_into not in loaded}
    for ref in (r for r in refs if ":" not in r):
        current, seen = loaded.get(ref), set()
        while current is not None and current.merged_into is not None and current.id not in seen:
            seen.add(current.id)
            current = loaded.get(current.merged_into)
        live = current is not None and current.merged_into is None and current.erased_at is None
        out[ref] = current if live else None
    return out


async def _reads(session: AsyncSession, owners: list[Profile]) -> dict[str, ProfileRead]:
    """What a decision reads of a profile (traits, consents, contact points), for many."""
    ids = sorted({p.id for p in owners})
    consents: dict[str, list[ConsentRead]] = {}
    contacts: dict[str, list[ContactPointRead]] = {}
    for part in chunks(ids, 500):
        stmt = select(Consent).where(Consent.profile_id.in_(part))
        for c in (await session.execute(stmt.order_by(Consent.channel, Consent.topic))).scalars():
            consents.setdefault(c.profile_id, []).append(
                ConsentRead(
                    channel=c.channel,
                    topic=c.topic,
                    status=c.status,
                    source=c.source,
                    updated_at=c.updated_at,
                )
            )
        points = select(ContactPoint).where(ContactPoint.profile_id.in_(part))
        order = (ContactPoint.kind, ContactPoint.id)
        for cp in (await session.execute(points.order_by(*order))).scalars():
            contacts.setdefault(cp.profile_id, []).append(
                ContactPointRead(kind=cp.kind, value=cp.value, data=cp.data, last_seen=cp.last_seen)
            )
    return {
        p.id: ProfileRead(
            id=p.id,
            traits=p.traits,
            identities=[],
            consents=consents.get(p.id, []),
            contact_points=contacts.get(p.id, []),
            channels=p.channels,
            first_seen=p.first_seen,
            last_seen=p.last_seen,
            merged_from=[],
        )
        for p in owners
    }


async def _blocked(
    session: AsyncSession, settings: Settings, reads: Any
) -> dict[tuple[str, str], str]:
    """The suppressed addresses among every address the batch's customers could be sent to."""
    addresses = set()
    for profile in reads:
        for channel in CONTACT_KIND:
            address = address_for(profile, channel, None)
            if address is not None:
                addresses.add((address.kind, address.value))
    return await suppressed(session, settings, sorted(addresses))


async def _engagement(
    session: AsyncSession, profile_ids: list[str], now: datetime
) -> dict[str, dict[str, float]]:
    """:func:`omnicx.messaging.choice.engagement` for many customers in one query."""
    out: dict[str, dict[str, float]] = {}
    for part in chunks(profile_ids, 500):
        ranked = (
            select(
                Message.profile_id,
                Message.channel,
                Message.opened_at,
                Message.clicked_at,
                func.row_number()
                .over(partition_by=Message.profile_id, order_by=Message.id.desc())
                .label("n"),
            )
            .where(
                Message.profile_id.in_(part),
                or_(Message.opened_at.is_not(None), Message.clicked_at.is_not(None)),
            )
            .subquery()
        )
        rows = await session.execute(select(ranked).where(ranked.c.n <= ENGAGEMENT_ROWS))
        for profile_id, channel, opened, clicked, _n in rows:
            scores = out.setdefault(profile_id, {})
            for when in (opened, clicked):
                if when is not None and channel:
                    age = max(0.0, (now - when).total_seconds() / 86400)
                    scores[channel] = scores.get(channel, 0.0) + 0.5 ** (age / HALF_LIFE_DAYS)
    return out


async def _counted(
    session: AsyncSession, profile_ids: list[str], now: datetime
) -> dict[str, list[tuple[str | None, datetime]]]:
    """Each customer's marketing sends that caps count, from a week and a day back."""
    out: dict[str, list[tuple[str | None, datetime]]] = {p: [] for p in profile_ids}
    for part in chunks(profile_ids, 500):
        rows = await session.execute(
            select(Message.profile_id, Message.channel, Message.send_at).where(
                Message.profile_id.in_(part),
                Message.category == "marketing",
                Message.status.in_(COUNTED),
                Message.send_at >= now - CAP_LOOKBACK,
            )
        )
        for profile_id, channel, send_at in rows:
            out.setdefault(profile_id or "", []).append((channel, send_at))
    return out
