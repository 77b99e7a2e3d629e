"""The write path: a batch of accepted events becomes timeline rows and profile changes.

:func:`record_events` runs inside the caller's transaction, so an acknowledged batch is committed
whole or not at all. For one batch it

1. drops events already stored (``messageId`` is unique per source, for good) and refuses events
   carrying an erased (suppressed) identifier, counting each refusal;
2. on PostgreSQL takes a transaction-scoped advisory lock per identifier (sorted, so two batches
   never wait on each other in a cycle), then locks the profiles those identifiers point at and
   follows any merge that committed meanwhile, so concurrent events for the same people make one
   merge;
3. resolves every event with :class:`~omnicx.profiles.identity.Resolver`, then writes new
   profiles, merges, identities, events, traits, consents and contact points in a few bulk
   statements.

Effects other than the event row itself (links, traits, consents) are idempotent, so a race
between two copies of one ``messageId`` on two connections still stores the event once and
applies it once.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import dialect_insert
from omnicx.hooks import Hooks, StoredEvent
from omnicx.profiles.identity import Identifier, IdentityRules, ProfileState, Resolver
from omnicx.profiles.models import (
    Consent,
    ContactPoint,
    Event,
    Identity,
    Merge,
    Profile,
    Suppression,
)
from omnicx.settings import Settings

CHUNK = 1000
CONTACT_IDENTIFIERS = ("email", "phone")


@dataclass(slots=True)
class IncomingEvent:
    """One validated event, as ingest hands it over."""

    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    sent_at: datetime | None = None
    original_timestamp: datetime | None = None
    previous_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    status: str  # stored | duplicate | rejected
    code: str | None = None
    message: str | None = None
    profile_id: str | None = None


def rules_from(settings: Settings) -> IdentityRules:
    return IdentityRules(
        limits=dict(settings.identity_limits),
        priority=tuple(settings.identity_priority),
        blocklist=frozenset(v.strip().lower() for v in settings.identity_blocklist),
        phone_region=settings.default_phone_region,
    )


def new_profile_id() -> str:
    return uuid.uuid4().hex


def iso(ts: datetime) -> str:
    """Fixed-width UTC text, so trait times compare correctly as strings."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def suppression_hash(secret: str, ident: Identifier) -> str:
    return hmac.new(secret.encode(), f"{ident[0]}:{ident[1]}".encode(), hashlib.sha256).hexdigest()


def profile_traits_of(ev: IncomingEvent) -> dict[str, Any]:
    """Traits an event sets on its person: ``context.traits`` always, identify traits too."""
    traits = (
        dict(ev.context.get("traits") or {}) if isinstance(ev.context.get("traits"), dict) else {}
    )
    if ev.type == "identify":
        traits.update(ev.traits)
    elif ev.type == "group" and ev.properties.get("group_id") is not None:
        traits["group_id"] = ev.properties["group_id"]
    return traits


def identifiers_of(ev: IncomingEvent, rules: IdentityRules) -> list[Identifier]:
    raw: list[tuple[str, object]] = [("user_id", ev.user_id), ("anonymous_id", ev.anonymous_id)]
    traits = profile_traits_of(ev)
    raw += [("email", traits.get("email")), ("phone", traits.get("phone"))]
    external = ev.context.get("externalIds")
    if isinstance(external, list):
        raw += [(str(x.get("type", "")), x.get("id")) for x in external if isinstance(x, dict)]
    found = (rules.normalise(id_type, value) for id_type, value in raw)
    return [ident for ident in found if ident is not None]


def alias_candidates(ev: IncomingEvent, rules: IdentityRules) -> list[Identifier]:
    """``previousId`` is a former user id or an anonymous id; both are looked up."""
    if ev.type != "alias":
        return []
    found = (rules.normalise(t, ev.previous_id) for t in ("user_id", "anonymous_id"))
    return [ident for ident in found if ident is not None]


def consents_of(context: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(channel, topic, granted|denied)`` from ``context.consent``.

    Accepts Segment's ``{"categoryPreferences": {"Advertising": true}}`` (channel ``all``, the
    category as topic) and OmniCX's ``{"email": {"marketing": true}, "sms": false}`` (a bare
    boolean means every topic, ``all``).
    """
    consent = context.get("consent")
    if not isinstance(consent, dict):
        return []
    out: list[tuple[str, str, str]] = []
    for key, value in consent.items():
        if key == "categoryPreferences" and isinstance(value, dict):
            out += [("all", str(t), _status(v)) for t, v in value.items() if isinstance(v, bool)]
        elif isinstance(value, bool):
            out.append((str(key), "all", _status(value)))
        elif isinstance(value, dict):
            out += [(str(key), str(t), _status(v)) for t, v in value.items() if isinstance(v, bool)]
    return out


def _status(granted: bool) -> str:
    return "granted" if granted else "denied"


def device_contacts_of(context: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Push tokens (``context.device.token``) and web-push subscriptions
    (``context.pushSubscription``, the browser's ``PushSubscription.toJSON()``)."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    device = context.get("device")
    if isinstance(device, dict) and isinstance(device.get("token"), str) and device["token"]:
        data = {k: device[k] for k in ("type", "id", "manufacturer", "model") if k in device}
        out.append(("push_token", device["token"][:2048], data))
    sub = context.get("pushSubscription")
    if isinstance(sub, dict) and isinstance(sub.get("endpoint"), str) and sub["endpoint"]:
        keys = sub.get("keys") if isinstance(sub.get("keys"), dict) else {}
        out.append(("webpush", sub["endpoint"][:2048], {"keys": keys}))
    return out


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def record_events(
    session: AsyncSession,
    *,
    source_id: int,
    channel: str,
    events: Sequence[IncomingEvent],
    settings: Settings,
    received_at: datetime,
    hooks: Hooks,
) -> list[Outcome]:
    """Store ``events`` from one source and apply them to profiles; one outcome per event.

    The reactions in ``hooks`` run in the same transaction: merge hooks as profiles merge,
    projectors on the events that were newly stored.
    """
    rules = rules_from(settings)
    outcomes: list[Outcome | None] = [None] * len(events)
    todo = await _drop_duplicates(session, source_id, events, outcomes)
    idents = {i: identifiers_of(events[i], rules) for i in todo}
    aliases = {i: alias_candidates(events[i], rules) for i in todo}
    for i in list(todo):
        if not idents[i] and not aliases[i]:
            outcomes[i] = Outcome("rejected", "no_identifier", "userId/anonymousId is not usable")
            todo.remove(i)
    todo = await _refuse_suppressed(session, settings, todo, idents, aliases, outcomes)

    every = sorted({x for i in todo for x in (*idents[i], *aliases[i])})
    if session.get_bind().dialect.name == "postgresql":
        await _advisory_locks(session, every)
    owners = await _owners(session, every)
    rows = await _lock_profiles(session, set(owners.values()))
    owners = {ident: _follow(rows, pid) for ident, pid in owners.items()}
    live = {pid: row for pid, row in rows.items() if row["merged_into"] is None}
    states = await _profile_states(session, live)
    resolver = Resolver(rules, states, new_profile_id, received_at)

    resolved: dict[int, str] = {}
    for i in todo:
        ident_list = list(idents[i])
        if aliases[i]:
            prev = next((a for a in aliases[i] if a in resolver.owner), aliases[i][-1])
            ident_list.append(prev)
        result = resolver.resolve(ident_list, i)
        if result is None:
            outcomes[i] = Outcome("rejected", "no_identifier", "no usable identifier")
            continue
        resolved[i] = result.profile_id

    for pid in resolver.created:
        live[pid] = {
            "id": pid,
            "traits": {},
            "trait_times": {},
            "channels": {},
            "first_seen": None,
            "last_seen": None,
            "merged_into": None,
            "created_at": received_at,
        }
    if resolver.created:
        await session.execute(
            dialect_insert(session, Profile),
            [
                {
                    "id": pid,
                    "traits": {},
                    "trait_times": {},
                    "channels": {},
                    "first_seen": received_at,
                    "last_seen": received_at,
                    "created_at": received_at,
                }
                for pid in resolver.created
            ],
        )
    await _apply_merges(session, resolver, live, events, hooks)
    if resolver.new_identities:
        await session.execute(
            dialect_insert(session, Identity),
            [
                {
                    "profile_id": resolver.final(pid),
                    "type": t,
                    "value": v,
                    "created_at": received_at,
                }
                for (t, v), pid in resolver.new_identities
            ],
        )

    final = {i: resolver.final(pid) for i, pid in resolved.items()}
    stored = await _insert_events(session, source_id, channel, events, final, received_at)
    for i in final:
        if i in stored:
            outcomes[i] = Outcome("stored", profile_id=final[i])
        else:
            outcomes[i] = Outcome("duplicate", profile_id=final[i])
    stored_idx = [i for i in final if i in stored]
    await _update_profiles(session, live, events, final, stored_idx, channel)
    await _upsert_consents(session, events, final, stored_idx, source_id)
    await _upsert_contacts(session, events, final, stored_idx, resolver, received_at)
    await hooks.project(
        session, [_stored(events[i], final[i], source_id, channel) for i in stored_idx]
    )
    await hooks.changed(
        session,
        {pid: {"created": True} for pid in resolver.created if pid not in resolver.merged_away},
    )
    return [
        o if o is not None else Outcome("rejected", "internal", "not processed") for o in outcomes
    ]


def _stored(ev: IncomingEvent, profile_id: str, source_id: int, channel: str) -> StoredEvent:
    return StoredEvent(
        id=None,
        profile_id=profile_id,
        source_id=source_id,
        message_id=ev.message_id,
        type=ev.type,
        event=ev.event,
        channel=channel,
        timestamp=ev.timestamp,
        properties=ev.properties,
        context=ev.context,
        traits=ev.traits,
    )


async def _drop_duplicates(
    session: AsyncSession,
    source_id: int,
    events: Sequence[IncomingEvent],
    outcomes: list[Outcome | None],
) -> list[int]:
    first: dict[str, int] = {}
    for i, ev in enumerate(events):
        if ev.message_id in first:
            outcomes[i] = Outcome("duplicate")
        else:
            first[ev.message_id] = i
    existing: set[str] = set()
    for part in chunks(list(first)):
        result = await session.execute(
            select(Event.message_id).where(Event.source_id == source_id, Event.message_id.in_(part))
        )
        existing.update(result.scalars())
    for mid in existing:
        outcomes[first[mid]] = Outcome("duplicate")
    return [i for mid, i in first.items() if mid not in existing]


async def _refuse_suppressed(
    session: AsyncSession,
    settings: Settings,
    todo: list[int],
    idents: dict[int, list[Identifier]],
    aliases: dict[int, list[Identifier]],
    outcomes: list[Outcome | None],
) -> list[int]:
    secret = settings.secret_key.get_secret_value()
    hashes = {i: [suppression_hash(secret, x) for x in (*idents[i], *aliases[i])] for i in todo}
    wanted = sorted({h for hs in hashes.values() for h in hs})
    suppressed: set[str] = set()
    for part in chunks(wanted):
        result = await session.execute(
            select(Suppression.key_hash).where(Suppression.key_hash.in_(part))
        )
        suppressed.update(result.scalars())
    if not suppressed:
        return todo
    refused: dict[str, int] = {}
    keep = []
    for i in todo:
        hit = [h for h in hashes[i] if h in suppressed]
        if hit:
            outcomes[i] = Outcome("rejected", "identity_suppressed", "this person was erased")
            refused[hit[0]] = refused.get(hit[0], 0) + 1
        else:
            keep.append(i)
    for key_hash, n in sorted(refused.items()):
        await session.execute(
            update(Suppression)
            .where(Suppression.key_hash == key_hash)
            .values(refused_count=Suppression.refused_count + n)
        )
    return keep


async def _advisory_locks(session: AsyncSession, identifiers: Sequence[Identifier]) -> None:
    keys = sorted(
        {
            int.from_bytes(hashlib.sha256(f"{t}:{v}".encode()).digest()[:8], "big", signed=True)
            for t, v in identifiers
        }
    )
    if keys:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock(k) FROM "
                "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ks"
            ),
            {"keys": keys},
        )


async def _owners(
    session: AsyncSession, identifiers: Sequence[Identifier]
) -> dict[Identifier, str]:
    owners: dict[Identifier, str] = {}
    for part in chunks(identifiers):
        by_type: dict[str, list[str]] = {}
        for id_type, value in part:
            by_type.setdefault(id_type, []).append(value)
        # "type = ? AND value IN (...)" per type searches the unique (type, value) index on both
        # databases; SQLite answers a row-value IN list by scanning the whole table.
        match = or_(
            *(and_(Identity.type == t, Identity.value.in_(vs)) for t, vs in by_type.items())
        )
        result = await session.execute(
            select(Identity.type, Identity.value, Identity.profile_id).where(match)
        )
        owners.update({(t, v): pid for t, v, pid in result})
    return owners


async def _lock_profiles(session: AsyncSession, ids: set[str]) -> dict[str, dict[str, Any]]:
    """Lock the rows (PostgreSQL) and follow merges committed since the identities were read."""
    rows: dict[str, dict[str, Any]] = {}
    wanted = set(ids)
    while wanted:
        stmt = (
            select(Profile.__table__)
            .where(Profile.id.in_(sorted(wanted)))
            .order_by(Profile.id)
            .with_for_update()
        )
        for row in (await session.execute(stmt)).mappings():
            rows[row["id"]] = dict(row)
        wanted = {
            r["merged_into"]
            for r in rows.values()
            if r["merged_into"] and r["merged_into"] not in rows
        }
    return rows


def _follow(rows: dict[str, dict[str, Any]], pid: str) -> str:
    seen = set()
    while rows[pid]["merged_into"] is not None and pid not in seen:
        seen.add(pid)
        pid = rows[pid]["merged_into"]
    return pid


async def _profile_states(
    session: AsyncSession, live: dict[str, dict[str, Any]]
) -> list[ProfileState]:
    states = {pid: ProfileState(pid, row["created_at"]) for pid, row in live.items()}
    for part in chunks(sorted(live)):
        result = await session.execute(
            select(Identity.type, Identity.value, Identity.profile_id).where(
                Identity.profile_id.in_(part)
            )
        )
        for t, v, pid in result:
            states[pid].identifiers.add((t, v))
    return list(states.values())


async def _apply_merges(
    session: AsyncSession,
    resolver: Resolver,
    live: dict[str, dict[str, Any]],
    events: Sequence[IncomingEvent],
    hooks: Hooks,
) -> None:
    for merge in resolver.merges:
        into, from_ = live[merge.into], live[merge.from_]
        _fold_profile(into, from_)
        ev = events[merge.event_index]
        for model in (Identity, Event, ContactPoint):
            await session.execute(
                update(model).where(model.profile_id == from_["id"]).values(profile_id=into["id"])
            )
        await _merge_consents(session, into["id"], from_["id"])
        await session.execute(
            update(Profile).where(Profile.merged_into == from_["id"]).values(merged_into=into["id"])
        )
        await session.execute(
            update(Profile)
            .where(Profile.id == from_["id"])
            .values(merged_into=into["id"], traits={}, trait_times={}, channels={})
        )
        session.add(
            Merge(
                into_profile_id=into["id"],
                from_profile_id=from_["id"],
                message_id=ev.message_id,
                linked_by=merge.linked_by,
            )
        )
        await hooks.merged(session, into["id"], from_["id"])
        from_["merged_into"] = into["id"]
        del live[from_["id"]]
    if resolver.merges:
        await session.flush()


def _fold_profile(into: dict[str, Any], from_: dict[str, Any]) -> None:
    traits, times = dict(into["traits"]), dict(into["trait_times"])
    for key, value in from_["traits"].items():
        when = from_["trait_times"].get(key, "")
        if key not in times or when > times[key]:
            traits[key], times[key] = value, when
    into["traits"], into["trait_times"] = traits, times
    channels = {k: dict(v) for k, v in into["channels"].items()}
    for name, act in from_["channels"].items():
        mine = channels.get(name)
        if mine is None:
            channels[name] = dict(act)
            continue
        mine["first_seen"] = min(mine["first_seen"], act["first_seen"])
        mine["last_seen"] = max(mine["last_seen"], act["last_seen"])
        mine["events"] = mine.get("events", 0) + act.get("events", 0)
    into["channels"] = channels
    for key, pick in (("first_seen", min), ("last_seen", max)):
        both = [t for t in (into[key], from_[key]) if t is not None]
        into[key] = pick(both) if both else None
    into["dirty"] = True


async def _merge_consents(session: AsyncSession, into: str, from_: str) -> None:
    result = await session.execute(select(Consent).where(Consent.profile_id.in_([into, from_])))
    by_key: dict[tuple[str, str], list[Consent]] = {}
    for consent in result.scalars():
        by_key.setdefault((consent.channel, consent.topic), []).append(consent)
    for group in by_key.values():
        newest = max(group, key=lambda c: (c.updated_at, c.profile_id == into))
        for consent in group:
            if consent is not newest:
                await session.delete(consent)
        newest.profile_id = into
    await session.flush()


async def _insert_events(
    session: AsyncSession,
    source_id: int,
    channel: str,
    events: Sequence[IncomingEvent],
    final: dict[int, str],
    received_at: datetime,
) -> set[int]:
    if not final:
        return set()
    rows = [
        {
            "source_id": source_id,
            "message_id": events[i].message_id,
            "profile_id": pid,
            "type": events[i].type,
            "event": events[i].event,
            "channel": channel,
            "user_id": events[i].user_id,
            "anonymous_id": events[i].anonymous_id,
            "timestamp": events[i].timestamp,
            "received_at": received_at,
            "sent_at": events[i].sent_at,
            "original_timestamp": events[i].original_timestamp,
            "properties": events[i].properties,
            "traits": events[i].traits,
            "context": events[i].context,
        }
        for i, pid in final.items()
    ]
    # "raw": one Core executemany. The ORM's bulk insert would split the rows into a statement
    # per run of rows with the same non-null columns, dozens a batch.
    stmt = (
        dialect_insert(session, Event)
        .on_conflict_do_nothing(index_elements=["source_id", "message_id"])
        .returning(Event.message_id)
        .execution_options(dml_strategy="raw")
    )
    inserted: set[str] = set()
    for part in chunks(rows, 500):
        result = await session.execute(stmt, list(part))
        inserted.update(result.scalars())
    return {i for i in final if events[i].message_id in inserted}


_PROFILE_STATE = ("traits", "trait_times", "channels", "first_seen", "last_seen")


async def _update_profiles(
    session: AsyncSession,
    live: dict[str, dict[str, Any]],
    events: Sequence[IncomingEvent],
    final: dict[int, str],
    stored: Iterable[int],
    channel: str,
) -> None:
    for i in stored:
        ev, row = events[i], live[final[i]]
        when = iso(ev.timestamp)
        traits, times = row["traits"], row["trait_times"]
        for key, value in profile_traits_of(ev).items():
            if when >= times.get(key, ""):
                traits[key], times[key] = value, when
        act = row["channels"].setdefault(
            channel, {"first_seen": when, "last_seen": when, "events": 0}
        )
        act["first_seen"] = min(act["first_seen"], when)
        act["last_seen"] = max(act["last_seen"], when)
        act["events"] += 1
        first, last = row["first_seen"], row["last_seen"]
        row["first_seen"] = ev.timestamp if first is None or ev.timestamp < first else first
        row["last_seen"] = ev.timestamp if last is None or ev.timestamp > last else last
        row["dirty"] = True
    changed = [r for r in live.values() if r.get("dirty")]
    if changed:
        # Core, not the ORM's bulk update by primary key, which costs more per row than the
        # UPDATE itself.
        profiles = cast(Table, Profile.__table__)
        stmt = (
            update(profiles)
            .where(profiles.c.id == bindparam("profile_id"))
            .values({name: bindparam(name) for name in _PROFILE_STATE})
        )
        await session.execute(
            stmt,
            [
                {"profile_id": r["id"], **{name: r[name] for name in _PROFILE_STATE}}
                for r in changed
            ],
        )


async def _upsert_consents(
    session: AsyncSession,
    events: Sequence[IncomingEvent],
    final: dict[int, str],
    stored: Iterable[int],
    source_id: int,
) -> None:
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i in stored:
        for channel, topic, status in consents_of(events[i].context):
            key = (final[i], channel, topic)
            row = {
                "profile_id": final[i],
                "channel": channel[:40],
                "topic": topic[:100],
                "status": status,
                "source": f"event:{source_id}",
                "updated_at": events[i].timestamp,
            }
            if key not in latest or row["updated_at"] >= latest[key]["updated_at"]:
                latest[key] = row
    if latest:
        await upsert_consents(session, list(latest.values()))


async def upsert_consents(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert or update consents; a change older than the stored one is ignored."""
    stmt = dialect_insert(session, Consent)
    stmt = stmt.on_conflict_do_update(
        index_elements=["profile_id", "channel", "topic"],
        set_={
            "status": stmt.excluded.status,
            "source": stmt.excluded.source,
            "updated_at": stmt.excluded.updated_at,
        },
        where=stmt.excluded.updated_at >= Consent.updated_at,
    )
    await session.execute(stmt, rows)


async def _upsert_contacts(
    session: AsyncSession,
    events: Sequence[IncomingEvent],
    final: dict[int, str],
    stored: Iterable[int],
    resolver: Resolver,
    now: datetime,
) -> None:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (kind, value), pid in resolver.new_identities:
        if kind in CONTACT_IDENTIFIERS:
            rows[(kind, value)] = _contact(resolver.final(pid), kind, value, {}, now)
    for i in stored:
        for kind, value, data in device_contacts_of(events[i].context):
            rows[(kind, value)] = _contact(final[i], kind, value, data, now)
    if not rows:
        return
    stmt = dialect_insert(session, ContactPoint)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "value"],
        set_={
            "profile_id": stmt.excluded.profile_id,
            "data": stmt.excluded.data,
            "last_seen": stmt.excluded.last_seen,
        },
    )
    await session.execute(stmt, list(rows.values()))


def _contact(
    pid: str, kind: str, value: str, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "profile_id": pid,
        "kind": kind,
        "value": value,
        "data": data,
        "created_at": now,
        "last_seen": now,
    }
