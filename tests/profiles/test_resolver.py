"""The identity rules and the resolver's decisions, without a database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from omnicx.profiles.identity import IdentityRules, ProfileState, Resolver

RULES = IdentityRules(
    limits={"user_id": 1, "email": 2},
    priority=("user_id", "email", "phone"),
    blocklist=frozenset({"guest"}),
    phone_region="NO",
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def resolver(*profiles: ProfileState) -> Resolver:
    counter = itertools.count()
    return Resolver(RULES, profiles, lambda: f"new-{next(counter)}", T0 + timedelta(days=1))


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  A.B@Example.COM", ("email", "a.b@example.com")),
        ("email", "not-an-email", None),
        ("phone", "912 34 567", ("phone", "+4791234567")),
        ("phone", "+1 415-555-2671", ("phone", "+14155552671")),
        ("phone", "12", None),
        ("user_id", 42, ("user_id", "42")),
        ("user_id", "guest", None),
        ("user_id", "UNDEFINED", None),
        ("user_id", "0000-0000", None),
        ("anonymous_id", "", None),
        ("user_id", True, None),
        ("Loyalty Card", "LC-1", ("loyalty_card", "LC-1")),
    ],
)
def test_normalise(kind: str, raw: object, expected: tuple[str, str] | None) -> None:
    assert RULES.normalise(kind, raw) == expected


def test_priority_orders_user_id_first_and_anonymous_last() -> None:
    ordered = RULES.ordered(
        [("anonymous_id", "a"), ("loyalty", "l"), ("phone", "p"), ("email", "e"), ("user_id", "u")]
    )
    assert [t for t, _ in ordered] == ["user_id", "email", "phone", "loyalty", "anonymous_id"]


def test_new_identifiers_make_one_new_profile() -> None:
    r = resolver()
    res = r.resolve([("user_id", "u"), ("anonymous_id", "a")], 0)
    assert res is not None and res.profile_id == "new-0"
    assert r.created == ["new-0"] and r.merges == []
    assert r.resolve([("anonymous_id", "a")], 1).profile_id == "new-0"  # type: ignore[union-attr]


def test_merge_keeps_the_older_profile() -> None:
    old = ProfileState("old", T0, {("user_id", "u")})
    young = ProfileState("young", T0 + timedelta(hours=1), {("anonymous_id", "a")})
    r = resolver(young, old)
    res = r.resolve([("anonymous_id", "a"), ("user_id", "u")], 3)
    assert res is not None and res.profile_id == "old"
    assert [(m.into, m.from_, m.event_index) for m in r.merges] == [("old", "young", 3)]
    assert r.final("young") == "old"


def test_limit_drops_the_weaker_identifier_instead_of_merging() -> None:
    alice = ProfileState("alice", T0, {("user_id", "alice"), ("anonymous_id", "tablet")})
    r = resolver(alice)
    res = r.resolve([("user_id", "bob"), ("anonymous_id", "tablet")], 0)
    assert res is not None and res.profile_id == "new-0"
    assert res.dropped == [("anonymous_id", "tablet")]
    assert r.merges == []


def test_per_type_cap_other_than_user_id() -> None:
    p = ProfileState("p", T0, {("email", "a@x.io"), ("email", "b@x.io")})
    r = resolver(p)
    res = r.resolve([("email", "a@x.io"), ("email", "c@x.io")], 0)
    assert res is not None and res.profile_id == "p"
    assert res.dropped == [("email", "c@x.io")]


def test_chained_merges_in_one_batch_end_in_the_oldest() -> None:
    a = ProfileState("a", T0, {("anonymous_id", "1")})
    b = ProfileState("b", T0 + timedelta(hours=1), {("anonymous_id", "2")})
    c = ProfileState("c", T0 + timedelta(hours=2), {("anonymous_id", "3")})
    r = resolver(c, b, a)
    r.resolve([("anonymous_id", "3"), ("anonymous_id", "2")], 0)
    r.resolve([("anonymous_id", "2"), ("anonymous_id", "1")], 1)
    assert r.final("c") == "a" and r.final("b") == "a"
    assert [(m.into, m.from_) for m in r.merges] == [("b", "c"), ("a", "b")]
