"""Identifiers and the deterministic identity graph's rules.

An identifier is a ``(type, value)`` pair: ``user_id``, ``anonymous_id``, ``email`` (trimmed,
lower-cased), ``phone`` (E.164) or any ``context.externalIds`` type (``loyalty_card``,
``pos_customer_id``, ``push_token``…). Values that identify nobody (``null``, ``undefined``,
``anonymous``, ``0``, ``-1``, empty, all zeros, plus ``OMNICX_IDENTITY_BLOCKLIST``) are dropped
before they can link anything.

:class:`Resolver` decides, for one event at a time, which profile the event belongs to, which new
identifiers that profile gains and which profiles merge. It walks the event's identifiers from
strongest to weakest (``OMNICX_IDENTITY_PRIORITY``; ``anonymous_id`` always last) and never lets a
profile exceed a per-type limit (``OMNICX_IDENTITY_LIMITS``, default one ``user_id``): an
identifier that would break a limit is dropped from the event instead of merging two people. So
two people logging in on one shared device stay two people, and the device's anonymous id stays
with whoever had it first.

The resolver works on an in-memory picture loaded under locks by :mod:`omnicx.profiles.record`, so
it is pure and cheap: one batch of events costs a handful of queries, not a few per event.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import phonenumbers

Identifier = tuple[str, str]

JUNK_VALUES = frozenset({"", "null", "undefined", "anonymous", "none", "nil", "nan", "0", "-1"})
_ALL_ZEROS = re.compile(r"^[0\-_.:\s]+$")
_TYPE_CLEAN = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class IdentityRules:
    limits: Mapping[str, int]
    priority: tuple[str, ...]
    blocklist: frozenset[str]
    phone_region: str

    def rank(self, id_type: str) -> tuple[int, str]:
        if id_type == "anonymous_id":
            return (len(self.priority) + 1, id_type)
        if id_type in self.priority:
            return (self.priority.index(id_type), id_type)
        return (len(self.priority), id_type)

    def limit(self, id_type: str) -> int | None:
        return self.limits.get(id_type)

    def is_junk(self, value: str) -> bool:
        low = value.strip().lower()
        return low in JUNK_VALUES or low in self.blocklist or bool(_ALL_ZEROS.match(low))

    def normalise(self, id_type: str, raw: object) -> Identifier | None:
        """The canonical identifier, or ``None`` when the value cannot identify anyone."""
        if raw is None or isinstance(raw, bool | dict | list):
            return None
        value = str(raw).strip()
        id_type = normalise_type(id_type)
        if not id_type or self.is_junk(value) or len(value) > 512:
            return None
        if id_type == "email":
            value = value.lower()
            local, at, domain = value.partition("@")
            if not (at and local and "." in domain):
                return None
        elif id_type == "phone":
            e164 = normalise_phone(value, self.phone_region)
            if e164 is None:
                return None
            value = e164
        return (id_type, value)

    def ordered(self, identifiers: Iterable[Identifier]) -> list[Identifier]:
        unique = dict.fromkeys(identifiers)
        return sorted(unique, key=lambda ident: self.rank(ident[0]))


def normalise_type(id_type: str) -> str:
    return _TYPE_CLEAN.sub("_", id_type.strip().lower()).strip("_")[:64]


def normalise_phone(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class ProfileState:
    """What the resolver needs to know of one profile."""

    id: str
    created_at: datetime
    identifiers: set[Identifier] = field(default_factory=set)

    def counts(self) -> Counter[str]:
        return Counter(id_type for id_type, _ in self.identifiers)


@dataclass
class PlannedMerge:
    into: str
    from_: str
    event_index: int
    linked_by: list[str]


@dataclass
class Resolution:
    profile_id: str
    dropped: list[Identifier]


class Resolver:
    """Resolves events one by one against a loaded slice of the identity graph."""

    def __init__(
        self,
        rules: IdentityRules,
        profiles: Iterable[ProfileState],
        new_profile_id: Callable[[], str],
        now: datetime,
    ) -> None:
        self.rules = rules
        self.profiles: dict[str, ProfileState] = {p.id: p for p in profiles}
        self.owner: dict[Identifier, str] = {
            ident: p.id for p in self.profiles.values() for ident in p.identifiers
        }
        self._new_profile_id = new_profile_id
        self._now = now
        self.created: list[str] = []
        self.new_identities: list[tuple[Identifier, str]] = []
        self.merges: list[PlannedMerge] = []
        self.merged_away: dict[str, str] = {}

    def resolve(self, identifiers: Iterable[Identifier], event_index: int) -> Resolution | None:
        ordered = self.rules.ordered(identifiers)
        if not ordered:
            return None
        target: ProfileState | None = None
        counts: Counter[str] = Counter()
        pending: list[Identifier] = []
        dropped: list[Identifier] = []
        for ident in ordered:
            owner_id = self.owner.get(ident)
            if owner_id is None:
                if self._fits(counts, Counter({ident[0]: 1})):
                    pending.append(ident)
                    counts[ident[0]] += 1
                else:
                    dropped.append(ident)
                continue
            owner = self.profiles[owner_id]
            if target is not None and owner.id == target.id:
                continue
            if not self._fits(counts, owner.counts()):
                dropped.append(ident)
                continue
            if target is None:
                target = owner
            else:
                types = sorted({t for t, _ in owner.identifiers} | {t for t, _ in pending})
                target = self._merge(target, owner, event_index, types)
            counts = target.counts() + Counter(t for t, _ in pending)
        if target is None:
            target = ProfileState(id=self._new_profile_id(), created_at=self._now)
            self.profiles[target.id] = target
            self.created.append(target.id)
        for ident in pending:
            target.identifiers.add(ident)
            self.owner[ident] = target.id
            self.new_identities.append((ident, target.id))
        return Resolution(profile_id=target.id, dropped=dropped)

    def _fits(self, counts: Counter[str], extra: Counter[str]) -> bool:
        for id_type, n in extra.items():
            limit = self.rules.limit(id_type)
            if limit is not None and counts[id_type] + n > limit:
                return False
        return True

    def _merge(
        self, a: ProfileState, b: ProfileState, event_index: int, types: list[str]
    ) -> ProfileState:
        into, from_ = sorted((a, b), key=lambda p: (p.created_at, p.id))
        for ident in from_.identifiers:
            self.owner[ident] = into.id
        into.identifiers |= from_.identifiers
        from_.identifiers = set()
        del self.profiles[from_.id]
        self.merged_away[from_.id] = into.id
        for moved, owner in list(self.merged_away.items()):
            if owner == from_.id:
                self.merged_away[moved] = into.id
        self.merges.append(PlannedMerge(into.id, from_.id, event_index, types))
        return into

    def final(self, profile_id: str) -> str:
        """Where a profile id seen earlier in the batch ended up after later merges."""
        return self.merged_away.get(profile_id, profile_id)
