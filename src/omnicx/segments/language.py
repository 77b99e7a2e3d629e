"""The segment definition language: parsed, validated and reduced to typed nodes.

A definition is JSON (or YAML in files). Combinators: ``{"and": [...]}``, ``{"or": [...]}``,
``{"not": {...}}``. Conditions:

- trait: ``{"trait": "plan", "op": "equals", "value": "gold"}``; ops ``equals``, ``not_equals``,
  ``in``, ``not_in``, ``contains``, ``exists``, ``not_exists``, ``gt``, ``gte``, ``lt``, ``lte``
  (numbers), ``before``, ``after`` (ISO dates), ``within_last_days``, ``more_than_days_ago``;
  ``"computed": "p_alive"`` instead of ``trait`` reads a computed trait (analytics).
- event: ``{"event": "Product Added", "where": [{"property": "category", "op": "equals",
  "value": "Outerwear"}], "count": {"gte": 2}, "within": "7d"}``; count ``gte`` (at least),
  ``lte`` (at most), ``eq`` (exactly); default at least once; ``within`` optional.
- event not followed by another (the abandoned-cart shape): ``{"event": "Product Added",
  "within": "2d", "not_followed_by": {"event": "Order Completed", "within": "1h"}}``: an X in the
  window whose follow-up window has passed without a Y.
- commerce: ``{"commerce": "total_spent" | "order_count", "op": "gte", "value": 500,
  "within": "365d", "fulfillment": "pickup"}``; ``{"commerce": "last_order", "op":
  "more_than_days_ago" | "within_last_days", "value": 90}``; ``{"commerce": "cart_has" |
  "wishlist_has" | "bought", "product_id": "…"}`` or ``"category": "…"`` (none: anything).
- reachability: ``{"reachable": "email", "topic": "marketing"}``: an address for the channel and
  consent granted for it (channel or ``all``, topic or ``all``) and not denied.
- membership: ``{"segment": "vip"}``.

Durations are ``30m``, ``1h``, ``7d``, ``2w``. Every error names the path of the offending part,
e.g. ``and[1].count: unknown comparison 'ge' (use gte, lte or eq)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

TRAIT_OPS = {
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "before",
    "after",
    "within_last_days",
    "more_than_days_ago",
}
VALUELESS = {"exists", "not_exists"}
NUMBER_OPS = {"gt", "gte", "lt", "lte"}
DAY_OPS = {"within_last_days", "more_than_days_ago"}
PROPERTY_OPS = TRAIT_OPS - DAY_OPS
COUNT_OPS = {"gte", "lte", "eq"}
COMMERCE_AMOUNTS = {"total_spent", "order_count"}
COMMERCE_ITEMS = {"cart_has", "wishlist_has", "bought"}
CHANNELS = {"email", "sms", "push", "webpush", "inapp", "any"}
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DefinitionError(ValueError):
    """A definition that cannot be compiled; ``path`` points at the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'definition'}: {message}")
        self.path = path
        self.reason = message


@dataclass(frozen=True)
class Compare:
    op: str
    value: Any = None


@dataclass(frozen=True)
class TraitCond:
    key: str
    compare: Compare
    computed: bool = False


@dataclass(frozen=True)
class PropertyFilter:
    key: str
    compare: Compare


@dataclass(frozen=True)
class EventCond:
    event: str
    where: tuple[PropertyFilter, ...] = ()
    count_op: str = "gte"
    count: int = 1
    within: timedelta | None = None


@dataclass(frozen=True)
class NotFollowedCond:
    event: str
    where: tuple[PropertyFilter, ...]
    within: timedelta
    then_event: str
    then_within: timedelta


@dataclass(frozen=True)
class CommerceAmountCond:
    measure: str  # total_spent | order_count
    compare: Compare
    within: timedelta | None = None
    fulfillment: str | None = None


@dataclass(frozen=True)
class LastOrderCond:
    compare: Compare  # within_last_days | more_than_days_ago


@dataclass(frozen=True)
class CommerceItemCond:
    where: str  # cart_has | wishlist_has | bought
    product_id: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class ReachableCond:
    channel: str
    topic: str


@dataclass(frozen=True)
class SegmentCond:
    segment_id: str


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = (
    And
    | Or
    | Not
    | TraitCond
    | EventCond
    | NotFollowedCond
    | CommerceAmountCond
    | LastOrderCond
    | CommerceItemCond
    | ReachableCond
    | SegmentCond
)


@dataclass
class Dependencies:
    """What can change a definition's answer for one profile: re-evaluate only on these."""

    events: set[str] = field(default_factory=set)
    traits: set[str] = field(default_factory=set)
    commerce: bool = False
    consent: bool = False
    computed: bool = False
    segments: set[str] = field(default_factory=set)
    time: bool = False  # the answer can change with time alone

    def as_json(self) -> dict[str, Any]:
        return {
            "events": sorted(self.events),
            "traits": sorted(self.traits),
            "commerce": self.commerce,
            "consent": self.consent,
            "computed": self.computed,
            "segments": sorted(self.segments),
            "time": self.time,
        }


def parse_duration(value: Any, path: str) -> timedelta:
    match = _DURATION.match(str(value).strip()) if isinstance(value, str | int) else None
    if match is None or int(match.group(1)) <= 0:
        raise DefinitionError(path, f"{value!r} is not a duration like 30m, 1h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse(definition: Any, path: str = "") -> Node:
    """Validate ``definition`` and return its typed form."""
    if not isinstance(definition, dict) or not definition:
        raise DefinitionError(path, "a condition must be a non-empty object")
    for combinator, cls in (("and", And), ("or", Or)):
        if combinator in definition:
            _only(definition, {combinator}, path)
            items = definition[combinator]
            if not isinstance(items, list) or not items:
                raise DefinitionError(_join(path, combinator), "needs a non-empty list")
            return cls(
                tuple(parse(x, f"{_join(path, combinator)}[{i}]") for i, x in enumerate(items))
            )
    if "not" in definition:
        _only(definition, {"not"}, path)
        return Not(parse(definition["not"], _join(path, "not")))
    if "trait" in definition or "computed" in definition:
        return _trait(definition, path)
    if "event" in definition:
        return _event(definition, path)
    if "commerce" in definition:
        return _commerce(definition, path)
    if "reachable" in definition:
        _only(definition, {"reachable", "topic"}, path)
        channel = definition["reachable"]
        if not isinstance(channel, str) or channel not in CHANNELS:
            raise DefinitionError(_join(path, "reachable"), f"unknown channel {channel!r}")
        return ReachableCond(channel, _text(definition.get("topic", "all"), _join(path, "topic")))
    if "segment" in definition:
        _only(definition, {"segment"}, path)
        return SegmentCond(_text(definition["segment"], _join(path, "segment")))
    raise DefinitionError(
        path,
        f"unknown condition with keys {sorted(definition)} (expected and, or, not, trait, "
        "computed, event, commerce, reachable or segment)",
    )


def dependencies(node: Node, deps: Dependencies | None = None) -> Dependencies:
    deps = deps if deps is not None else Dependencies()
    match node:
        case And(items) | Or(items):
            for item in items:
                dependencies(item, deps)
        case Not(item):
            dependencies(item, deps)
        case TraitCond(key, compare, computed):
            if computed:
                deps.computed = True
            else:
                deps.traits.add(key)
            deps.time |= compare.op in DAY_OPS
        case EventCond(event, _, _, _, within):
            deps.events.add(event)
            deps.time |= within is not None
        case NotFollowedCond(event, _, _, then_event, _):
            deps.events |= {event, then_event}
            deps.time = True
        case CommerceAmountCond(_, _, within, _):
            deps.commerce = True
            deps.time |= within is not None
        case LastOrderCond():
            deps.commerce = deps.time = True
        case CommerceItemCond():
            deps.commerce = True
        case ReachableCond():
            deps.consent = True
        case SegmentCond(segment_id):
            deps.segments.add(segment_id)
    return deps


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _only(definition: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(definition) - allowed)
    if extra:
        raise DefinitionError(path, f"unexpected keys {extra} (allowed: {sorted(allowed)})")


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(path, "must be a non-empty string")
    return value


def _compare(definition: dict[str, Any], path: str, ops: set[str]) -> Compare:
    op = definition.get("op")
    if not isinstance(op, str) or op not in ops:
        raise DefinitionError(
            _join(path, "op"), f"unknown operator {op!r} (use {', '.join(sorted(ops))})"
        )
    if op in VALUELESS:
        if "value" in definition:
            raise DefinitionError(_join(path, "value"), f"{op} takes no value")
        return Compare(op)
    if "value" not in definition:
        raise DefinitionError(_join(path, "value"), f"{op} needs a value")
    value = definition["value"]
    vpath = _join(path, "value")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise DefinitionError(vpath, f"{op} needs a non-empty list")
        if any(isinstance(v, dict | list) for v in value):
            raise DefinitionError(vpath, "list items must be plain values")
    elif op in NUMBER_OPS or op in DAY_OPS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DefinitionError(vpath, f"{op} needs a number")
        if op in DAY_OPS and value < 0:
            raise DefinitionError(vpath, "days cannot be negative")
    elif op in ("before", "after"):
        from datetime import datetime

        try:
            datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise DefinitionError(vpath, f"{value!r} is not an ISO 8601 date") from exc
    elif isinstance(value, dict | list):
        raise DefinitionError(vpath, "must be a plain value")
    return Compare(op, value)


def _trait(definition: dict[str, Any], path: str) -> TraitCond:
    computed = "computed" in definition
    key_name = "computed" if computed else "trait"
    _only(definition, {key_name, "op", "value"}, path)
    key = _text(definition[key_name], _join(path, key_name))
    return TraitCond(key, _compare(definition, path, TRAIT_OPS), computed)


def _filters(raw: Any, path: str) -> tuple[PropertyFilter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise DefinitionError(path, "where must be a list of property conditions")
    filters = []
    for i, item in enumerate(raw):
        ipath = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(ipath, "must be an object")
        _only(item, {"property", "op", "value"}, ipath)
        key = _text(item.get("property"), _join(ipath, "property"))
        filters.append(PropertyFilter(key, _compare(item, ipath, PROPERTY_OPS)))
    return tuple(filters)


def _event(definition: dict[str, Any], path: str) -> EventCond | NotFollowedCond:
    event = _text(definition["event"], _join(path, "event"))
    where = _filters(definition.get("where"), _join(path, "where"))
    if "not_followed_by" in definition:
        _only(definition, {"event", "where", "within", "not_followed_by"}, path)
        then = definition["not_followed_by"]
        tpath = _join(path, "not_followed_by")
        if not isinstance(then, dict):
            raise DefinitionError(tpath, "must be an object with event and within")
        _only(then, {"event", "within"}, tpath)
        if "within" not in definition:
            raise DefinitionError(_join(path, "within"), "needs a window for the first event")
        if "within" not in then:
            raise DefinitionError(_join(tpath, "within"), "needs the follow-up window")
        within = parse_duration(definition["within"], _join(path, "within"))
        then_within = parse_duration(then["within"], _join(tpath, "within"))
        if then_within >= within:
            raise DefinitionError(tpath, "the follow-up window must be shorter than the window")
        return NotFollowedCond(
            event, where, within, _text(then.get("event"), _join(tpath, "event")), then_within
        )
    _only(definition, {"event", "where", "within", "count"}, path)
    count_op, count = "gte", 1
    if "count" in definition:
        cpath = _join(path, "count")
        raw = definition["count"]
        if not isinstance(raw, dict) or len(raw) != 1:
            raise DefinitionError(cpath, 'must be one comparison like {"gte": 2}')
        [(count_op, count)] = raw.items()
        if count_op not in COUNT_OPS:
            raise DefinitionError(cpath, f"unknown comparison {count_op!r} (use gte, lte or eq)")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise DefinitionError(cpath, "the count must be a whole number ≥ 0")
    window = (
        parse_duration(definition["within"], _join(path, "within"))
        if "within" in definition
        else None
    )
    return EventCond(event, where, count_op, count, window)


def _commerce(definition: dict[str, Any], path: str) -> Node:
    measure = definition["commerce"]
    mpath = _join(path, "commerce")
    if not isinstance(measure, str):
        raise DefinitionError(mpath, "must be the name of a measure")
    if measure in COMMERCE_AMOUNTS:
        _only(definition, {"commerce", "op", "value", "within", "fulfillment"}, path)
        compare = _compare(definition, path, NUMBER_OPS | {"equals"})
        if not isinstance(compare.value, int | float) or isinstance(compare.value, bool):
            raise DefinitionError(_join(path, "value"), "needs a number")
        within = (
            parse_duration(definition["within"], _join(path, "within"))
            if "within" in definition
            else None
        )
        fulfillment = definition.get("fulfillment")
        if fulfillment is not None and fulfillment not in ("pickup", "delivery", "in_store"):
            raise DefinitionError(_join(path, "fulfillment"), "pickup, delivery or in_store")
        return CommerceAmountCond(measure, compare, within, fulfillment)
    if measure == "last_order":
        _only(definition, {"commerce", "op", "value"}, path)
        return LastOrderCond(_compare(definition, path, DAY_OPS))
    if measure in COMMERCE_ITEMS:
        _only(definition, {"commerce", "product_id", "category"}, path)
        product = definition.get("product_id")
        category = definition.get("category")
        for key, value in (("product_id", product), ("category", category)):
            if value is not None:
                _text(value, _join(path, key))
        return CommerceItemCond(measure, product, category)
    raise DefinitionError(
        mpath,
        f"unknown measure {measure!r} (use total_spent, order_count, last_order, cart_has, "
        "wishlist_has or bought)",
    )
