"""Property filters and context matches, evaluated in Python on one event's properties.

The filters are the segment language's (``segments.language.PropertyFilter``); here they are
applied to an event in hand (the projector's) rather than compiled to SQL, with the same
meaning: numbers compare only with numbers, ``before``/``after`` compare ISO dates at second
precision in UTC, ``contains`` is a substring (text) or membership (list), a missing property
fails everything but ``not_exists`` and ``not_equals``/``not_in``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from omnicx.journeys.definition import EventSpec
from omnicx.segments.language import PropertyFilter


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _instant(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def holds(flt: PropertyFilter, properties: Mapping[str, Any]) -> bool:
    op, want = flt.compare.op, flt.compare.value
    present = flt.key in properties and properties[flt.key] is not None
    value = properties.get(flt.key)
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    if op == "not_equals":
        return not present or value != want
    if op == "not_in":
        return not present or value not in want
    if not present:
        return False
    if op == "equals":
        return bool(value == want)
    if op == "in":
        return value in want
    if op == "contains":
        if isinstance(value, list):
            return want in value
        return isinstance(value, str) and str(want) in value
    if op in ("gt", "gte", "lt", "lte"):
        a, b = _number(value), _number(want)
        if a is None or b is None:
            return False
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if op in ("before", "after"):
        a2, b2 = _instant(value), _instant(want)
        if a2 is None or b2 is None:
            return False
        return a2 < b2 if op == "before" else a2 > b2
    return False


def all_hold(filters: Iterable[PropertyFilter], properties: Mapping[str, Any]) -> bool:
    return all(holds(f, properties) for f in filters)


def expected(spec: EventSpec, context: Mapping[str, Any]) -> dict[str, Any]:
    """The values an awaited event's properties must equal, fixed from the run's context."""
    return {event_key: context.get(context_key) for event_key, context_key in spec.match}


def matches(
    spec: EventSpec, name: str | None, properties: Mapping[str, Any], context: Mapping[str, Any]
) -> bool:
    if name != spec.event or not all_hold(spec.where, properties):
        return False
    return all(properties.get(k) == v for k, v in expected(spec, context).items())
