"""Journey definitions (JSON through the API, YAML in files) validated into typed nodes.

A definition::

    entry: {event: Cart Abandoned, where: [...], key: cart_id}   # or {segment: lapsed-customers}
                                   # or {schedule: {…}} / {after_trait: …} (below)
    reentry: once_at_a_time        # once | once_at_a_time | {cooldown: 30d}
    goal: {event: Order Completed, within: 3d, match: [cart_id]}
    start: wait-an-hour            # default: the first node
    nodes:
      - {id: wait-an-hour, type: wait, duration: 1h}
      - {id: offer, type: send, message: cart-offer, channel: [webpush, push, email]}

Scheduled entries, on a date trait (an ISO date or date-time), at ``at`` local time in the
customer's ``timezone`` trait (or the ``timezone`` given)::

    entry: {schedule: {trait: birthday, on: anniversary, at: "10:00"}}   # every year
    entry: {schedule: {trait: renewal_on, on: date, offset: -7d, at: "09:00"}}   # once
    entry: {after_trait: first_order_at, days: 30, at: "10:00"}   # = on: date, offset: 30d

A daily sweep per live journey (:mod:`omnicx.journeys.schedule`) sets an enter timer at each
customer's moment in the coming day, so the entry is on time to the timer's precision; a
29 February anniversary is on 28 February in other years. One occurrence enters once (its date
is the entry key); the re-entry policy applies across occurrences. A trait set or changed to a
moment less than a day ahead may be past the sweep that covered it, and is then missed.

Nodes run in list order unless ``next`` says otherwise; the last one ends the run. Types:

- ``wait``: ``duration``; and/or ``window: "10:00-20:00"`` with ``days`` (``weekdays``,
  ``weekends`` or ``[mon, …]``) in the customer's ``timezone`` trait; or ``until: {trait|context:
  name, at: "09:00", offset: -1d}`` (a date; passed dates go on at once).
- ``wait_for_event``: ``event``, ``where``, ``match`` (properties equal to the trigger's:
  ``[cart_id]`` or ``{event_property: context_property}``), ``timeout``, ``timeout_next``.
- ``branch``: ``branches: [{name, when: <segment condition>, context: [<property filters on the
  trigger event>], next}]``, first match wins, else ``default`` (or the following node).
- ``split``: ``variants: [{name, weight, next}]``, ``holdout`` percent; by a hash of journey,
  node and customer, so a customer always lands in the same arm. Each assignment (holdout too)
  is an ``Experiment Viewed`` timeline event with ``experiment_id`` ``{journey}:{node}`` and
  ``variation_id`` the arm's name, so ``/api/analytics/experiments/{journey}:{node}`` reports it.
- ``send``: ``message`` (template), ``channel`` (a channel, a fallback list or ``auto``),
  ``data``; ``webhook``: the same on the webhook channel; ``update_traits``: ``set: {…}``;
  ``exit``.

Property filters and conditions are the segment language's (``segments.language``). Every error
names where it is, e.g. ``nodes.offer.channel: unknown channel 'pidgeon'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omnicx.segments.language import DefinitionError as ConditionError
from omnicx.segments.language import EventCond, PropertyFilter
from omnicx.segments.language import Node as Condition
from omnicx.segments.language import parse as parse_condition

CHANNELS = ("email", "sms", "push", "webpush", "inapp", "webhook")
NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"weekdays": DAYS[:5], "weekends": DAYS[5:], "all": DAYS}
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
REENTRY = ("once", "once_at_a_time")


class JourneyDefinitionError(ValueError):
    """A definition that cannot run; ``path`` points at the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'definition'}: {message}")
        self.path = path
        self.reason = message


@dataclass(frozen=True)
class EventSpec:
    """An event to listen for: name, property filters, properties equal to the context's."""

    event: str
    where: tuple[PropertyFilter, ...] = ()
    match: tuple[tuple[str, str], ...] = ()  # (event property, context property)


@dataclass(frozen=True)
class Schedule:
    """Entry on a date trait: each year on its anniversary, or once on the date itself, moved
    by ``offset`` days, at ``at`` in the customer's timezone (or ``zone``)."""

    trait: str
    on: str  # anniversary | date
    offset: timedelta
    at: time
    zone: str | None = None  # None: the customer's ``timezone`` trait


SCHEDULED = "Journey Scheduled"  # the entry "event" of a scheduled journey (never ingested)


@dataclass(frozen=True)
class Entry:
    event: str
    where: tuple[PropertyFilter, ...] = ()
    key: str | None = None
    schedule: Schedule | None = None


@dataclass(frozen=True)
class Goal:
    spec: EventSpec
    within: timedelta | None


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    days: tuple[int, ...]  # weekday numbers, Monday 0


@dataclass(frozen=True)
class DateRef:
    source: str  # trait | context
    name: str
    at: time | None
    offset: timedelta


@dataclass(frozen=True)
class Wait:
    id: str
    next: str | None
    duration: timedelta | None = None
    window: Window | None = None
    until: DateRef | None = None
    kind: str = "wait"


@dataclass(frozen=True)
class WaitForEvent:
    id: str
    next: str | None
    spec: EventSpec
    timeout: timedelta
    timeout_next: str | None
    kind: str = "wait_for_event"


@dataclass(frozen=True)
class Arm:
    name: str
    when: Condition | None
    context: tuple[PropertyFilter, ...]
    next: str | None


@dataclass(frozen=True)
class Branch:
    id: str
    arms: tuple[Arm, ...]
    default: str | None
    kind: str = "branch"
    next: None = None  # where it goes is per arm


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    next: str | None


@dataclass(frozen=True)
class Split:
    id: str
    variants: tuple[Variant, ...]
    holdout: float  # percent of customers who get nothing (measured against the goal)
    kind: str = "split"
    next: None = None  # where it goes is per variant


@dataclass(frozen=True)
class Send:
    id: str
    next: str | None
    message: str
    channel: str | tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = "send"


@dataclass(frozen=True)
class UpdateTraits:
    id: str
    next: str | None
    set: dict[str, Any]
    kind: str = "update_traits"


@dataclass(frozen=True)
class Exit:
    id: str
    next: None = None
    kind: str = "exit"


Step = Wait | WaitForEvent | Branch | Split | Send | UpdateTraits | Exit
WAITS = (Wait, WaitForEvent)


@dataclass(frozen=True)
class JourneyDef:
    entry: Entry
    reentry: str  # once | once_at_a_time | cooldown
    cooldown: timedelta | None
    goal: Goal | None
    start: str
    nodes: dict[str, Step]

    def events_waited_for(self) -> set[str]:
        return {n.spec.event for n in self.nodes.values() if isinstance(n, WaitForEvent)}

    def templates(self) -> set[str]:
        return {n.message for n in self.nodes.values() if isinstance(n, Send)}


def parse_duration(value: Any, path: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``1h30m``, ``3d``, ``2w``; a leading ``-`` for offsets."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("-").replace(" ", "")
    parts = _DURATION_PART.findall(body)
    if not body or not parts or "".join(n + u for n, u in parts) != body:
        raise JourneyDefinitionError(path, f"{value!r} is not a duration like 30m, 1h, 3d")
    total = sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
    return sign * total


def parse(definition: Any) -> JourneyDef:
    """Validate ``definition`` and return its typed form."""
    if not isinstance(definition, dict):
        raise JourneyDefinitionError("", "a journey definition must be an object")
    _only(definition, {"entry", "reentry", "goal", "start", "nodes"}, "")
    entry = _entry(_required(definition, "entry", ""), "entry")
    reentry, cooldown = _reentry(definition.get("reentry", "once_at_a_time"), "reentry")
    goal = _goal(definition["goal"], "goal") if definition.get("goal") is not None else None
    raw_nodes = _required(definition, "nodes", "")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise JourneyDefinitionError("nodes", "needs a non-empty list of nodes")
    ids: list[str] = []
    for i, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            raise JourneyDefinitionError(f"nodes[{i}]", "a node must be an object")
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not NODE_ID.match(node_id):
            raise JourneyDefinitionError(
                f"nodes[{i}].id", "needs an id of letters, digits, '.', '_' or '-'"
            )
        if node_id in ids:
            raise JourneyDefinitionError(f"nodes[{i}].id", f"duplicate node id {node_id!r}")
        ids.append(node_id)
    nodes: dict[str, Step] = {}
    for i, raw in enumerate(raw_nodes):
        following = ids[i + 1] if i + 1 < len(ids) else None
        nodes[ids[i]] = _node(raw, f"nodes.{ids[i]}", following)
    start = definition.get("start", ids[0])
    if start not in nodes:
        raise JourneyDefinitionError("start", f"no node {start!r}")
    for node_id, node in nodes.items():
        for where, target in _targets(node):
            if target is not None and target not in nodes:
                raise JourneyDefinitionError(f"nodes.{node_id}.{where}", f"no node {target!r}")
    _no_loop_without_wait(nodes)
    return JourneyDef(entry, reentry, cooldown, goal, start, nodes)


def successors(node: Step) -> list[str | None]:
    return [target for _, target in _targets(node)]


def _targets(node: Step) -> list[tuple[str, str | None]]:
    if isinstance(node, Branch):
        arms = [(f"branches[{i}].next", a.next) for i, a in enumerate(node.arms)]
        return [*arms, ("default", node.default)]
    if isinstance(node, Split):
        return [(f"variants[{i}].next", v.next) for i, v in enumerate(node.variants)]
    if isinstance(node, WaitForEvent):
        return [("next", node.next), ("timeout_next", node.timeout_next)]
    return [("next", node.next)]


def _no_loop_without_wait(nodes: dict[str, Step]) -> None:
    """A cycle must pass through a wait, or one wake-up would never end."""
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node_id: str, trail: list[str]) -> None:
        node = nodes[node_id]
        if isinstance(node, WAITS):
            return
        state[node_id] = 1
        for target in successors(node):
            if target is None:
                continue
            if state.get(target) == 1 and not isinstance(nodes[target], WAITS):
                loop = " → ".join([*trail[trail.index(target) :], target])
                raise JourneyDefinitionError(
                    f"nodes.{node_id}", f"loops back without a wait: {loop}"
                )
            if target not in state:
                visit(target, [*trail, target])
        state[node_id] = 2

    for node_id in nodes:
        if node_id not in state:
            visit(node_id, [node_id])


def _node(raw: dict[str, Any], path: str, following: str | None) -> Step:
    kind = raw.get("type")
    node_id: str = raw["id"]
    nxt = _next(raw, "next", path, following)
    if kind == "wait":
        _only(raw, {"id", "type", "next", "duration", "window", "days", "until"}, path)
        duration = (
            parse_duration(raw["duration"], f"{path}.duration") if "duration" in raw else None
        )
        if duration is not None and duration <= timedelta(0):
            raise JourneyDefinitionError(f"{path}.duration", "must be positive")
        window = _window(raw, path) if "window" in raw else None
        if "days" in raw and window is None:
            raise JourneyDefinitionError(f"{path}.days", "days go with a window")
        until = _until(raw["until"], f"{path}.until") if "until" in raw else None
        if until is not None and (duration or window):
            raise JourneyDefinitionError(path, "until cannot be combined with duration or window")
        if not (duration or window or until):
            raise JourneyDefinitionError(path, "a wait needs a duration, a window or until")
        return Wait(node_id, nxt, duration, window, until)
    if kind == "wait_for_event":
        keys = {"id", "type", "next", "event", "where", "match", "timeout", "timeout_next"}
        _only(raw, keys, path)
        spec = _event_spec(raw, path)
        timeout = parse_duration(_required(raw, "timeout", path), f"{path}.timeout")
        if timeout <= timedelta(0):
            raise JourneyDefinitionError(f"{path}.timeout", "must be positive")
        timeout_next = _next(raw, "timeout_next", path, following)
        return WaitForEvent(node_id, nxt, spec, timeout, timeout_next)
    if kind == "branch":
        _only(raw, {"id", "type", "branches", "default"}, path)
        return Branch(node_id, _arms(raw, path, following), _next(raw, "default", path, following))
    if kind == "split":
        _only(raw, {"id", "type", "variants", "holdout"}, path)
        return _split(raw, path, following)
    if kind in ("send", "webhook"):
        _only(raw, {"id", "type", "next", "message", "channel", "data"}, path)
        message = _text(_required(raw, "message", path), f"{path}.message")
        channel = "webhook" if kind == "webhook" else _channel(raw.get("channel", "auto"), path)
        if kind == "webhook" and "channel" in raw:
            raise JourneyDefinitionError(f"{path}.channel", "a webhook node sends by webhook")
        data = raw.get("data", {})
        if not isinstance(data, dict):
            raise JourneyDefinitionError(f"{path}.data", "must be an object")
        return Send(node_id, nxt, message, channel, data)
    if kind == "update_traits":
        _only(raw, {"id", "type", "next", "set"}, path)
        values = _required(raw, "set", path)
        if not isinstance(values, dict) or not values:
            raise JourneyDefinitionError(f"{path}.set", "needs an object of trait values")
        return UpdateTraits(node_id, nxt, dict(values))
    if kind == "exit":
        _only(raw, {"id", "type"}, path)
        return Exit(node_id)
    kinds = "wait, wait_for_event, branch, split, send, webhook, update_traits, exit"
    raise JourneyDefinitionError(f"{path}.type", f"unknown node type {kind!r} (use {kinds})")


def _entry(raw: Any, path: str) -> Entry:
    if not isinstance(raw, dict):
        raise JourneyDefinitionError(path, "must be an object")
    for sugar, event in (("segment", "Segment Entered"), ("segment_exited", "Segment Exited")):
        if sugar in raw:
            _only(raw, {sugar}, path)
            segment = _text(raw[sugar], f"{path}.{sugar}")
            where = _filters([{"property": "segment_id", "op": "equals", "value": segment}], path)
            return Entry(event, where, None)
    if "schedule" in raw or "after_trait" in raw:
        return Entry(SCHEDULED, (), None, _schedule(raw, path))
    _only(raw, {"event", "where", "key"}, path)
    event = _text(_required(raw, "event", path), f"{path}.event")
    key = _text(raw["key"], f"{path}.key") if raw.get("key") is not None else None
    return Entry(event, _filters(raw.get("where"), path), key)


def _schedule(raw: dict[str, Any], path: str) -> Schedule:
    if "after_trait" in raw:  # {after_trait: first_order_at, days: 30, at: "10:00"}
        _only(raw, {"after_trait", "days", "at", "timezone"}, path)
        trait = _text(raw["after_trait"], f"{path}.after_trait")
        days = raw.get("days", 0)
        if isinstance(days, bool) or not isinstance(days, int) or not -3660 <= days <= 3660:
            raise JourneyDefinitionError(f"{path}.days", "a whole number of days")
        on, offset, spec = "date", timedelta(days=days), raw
    else:
        _only(raw, {"schedule"}, path)
        spec, path = raw["schedule"], f"{path}.schedule"
        if not isinstance(spec, dict):
            raise JourneyDefinitionError(path, "must be an object with trait")
        _only(spec, {"trait", "on", "offset", "at", "timezone"}, path)
        trait = _text(_required(spec, "trait", path), f"{path}.trait")
        on = spec.get("on", "anniversary")
        if on not in ("anniversary", "date"):
            raise JourneyDefinitionError(f"{path}.on", "anniversary or date")
        offset = (
            parse_duration(spec["offset"], f"{path}.offset") if "offset" in spec else timedelta()
        )
        if offset % timedelta(days=1):
            raise JourneyDefinitionError(f"{path}.offset", "whole days, e.g. 30d or -1d")
    try:
        at = time.fromisoformat(str(spec.get("at", "00:00")))
    except ValueError:
        raise JourneyDefinitionError(f"{path}.at", f"{spec.get('at')!r} is not HH:MM") from None
    zone = spec.get("timezone", "customer")
    if zone != "customer":
        try:
            ZoneInfo(_text(zone, f"{path}.timezone"))
        except (ZoneInfoNotFoundError, ValueError):
            raise JourneyDefinitionError(
                f"{path}.timezone", f"{zone!r}: use customer or an IANA name"
            ) from None
    return Schedule(trait, on, offset, at, None if zone == "customer" else zone)


def _reentry(raw: Any, path: str) -> tuple[str, timedelta | None]:
    if raw in REENTRY:
        return str(raw), None
    if isinstance(raw, dict) and set(raw) == {"cooldown"}:
        cooldown = parse_duration(raw["cooldown"], f"{path}.cooldown")
        if cooldown <= timedelta(0):
            raise JourneyDefinitionError(f"{path}.cooldown", "must be positive")
        return "cooldown", cooldown
    raise JourneyDefinitionError(path, f"{raw!r}: use once, once_at_a_time or {{cooldown: 30d}}")


def _goal(raw: Any, path: str) -> Goal:
    if not isinstance(raw, dict):
        raise JourneyDefinitionError(path, "must be an object with an event")
    _only(raw, {"event", "where", "match", "within"}, path)
    within = parse_duration(raw["within"], f"{path}.within") if "within" in raw else None
    return Goal(_event_spec(raw, path), within)


def _event_spec(raw: dict[str, Any], path: str) -> EventSpec:
    event = _text(_required(raw, "event", path), f"{path}.event")
    match = raw.get("match", [])
    if isinstance(match, list) and all(isinstance(m, str) and m for m in match):
        pairs = tuple((m, m) for m in match)
    elif isinstance(match, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in match.items()
    ):
        pairs = tuple(match.items())
    else:
        raise JourneyDefinitionError(
            f"{path}.match", "a list of property names, or {event property: context property}"
        )
    return EventSpec(event, _filters(raw.get("where"), path), pairs)


def _filters(raw: Any, path: str) -> tuple[PropertyFilter, ...]:
    """Property filters in the segment language's form, validated by it."""
    if raw is None:
        return ()
    try:
        cond = parse_condition({"event": "-", "where": raw}, path)
    except ConditionError as exc:
        raise JourneyDefinitionError(exc.path, exc.reason) from exc
    assert isinstance(cond, EventCond)
    return cond.where


def _window(raw: dict[str, Any], path: str) -> Window:
    text = raw["window"]
    start, sep, end = str(text).partition("-")
    try:
        if not sep:
            raise ValueError
        window = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError:
        raise JourneyDefinitionError(f"{path}.window", f"{text!r} is not HH:MM-HH:MM") from None
    if window[0] == window[1]:
        raise JourneyDefinitionError(f"{path}.window", "start and end are the same")
    days = raw.get("days", "all")
    names = DAY_SETS.get(days) if isinstance(days, str) else days
    if not isinstance(names, list | tuple) or not names or any(d not in DAYS for d in names):
        raise JourneyDefinitionError(
            f"{path}.days",
            "weekdays, weekends, all, or a list of mon, tue, wed, thu, fri, sat, sun",
        )
    return Window(window[0], window[1], tuple(sorted(DAYS.index(d) for d in set(names))))


def _until(raw: Any, path: str) -> DateRef:
    if not isinstance(raw, dict):
        raise JourneyDefinitionError(path, "must be an object with trait or context")
    _only(raw, {"trait", "context", "at", "offset"}, path)
    sources = [s for s in ("trait", "context") if s in raw]
    if len(sources) != 1:
        raise JourneyDefinitionError(path, "needs exactly one of trait or context")
    name = _text(raw[sources[0]], f"{path}.{sources[0]}")
    at = None
    if "at" in raw:
        try:
            at = time.fromisoformat(str(raw["at"]))
        except ValueError:
            raise JourneyDefinitionError(f"{path}.at", f"{raw['at']!r} is not HH:MM") from None
    offset = parse_duration(raw["offset"], f"{path}.offset") if "offset" in raw else timedelta()
    return DateRef(sources[0], name, at, offset)


def _arms(raw: dict[str, Any], path: str, following: str | None) -> tuple[Arm, ...]:
    items = _required(raw, "branches", path)
    if not isinstance(items, list) or not items:
        raise JourneyDefinitionError(f"{path}.branches", "needs a non-empty list")
    arms: list[Arm] = []
    for i, item in enumerate(items):
        ipath = f"{path}.branches[{i}]"
        if not isinstance(item, dict):
            raise JourneyDefinitionError(ipath, "must be an object")
        _only(item, {"name", "when", "context", "next"}, ipath)
        name = _text(item.get("name", f"branch-{i + 1}"), f"{ipath}.name")
        if name == "default" or name in (a.name for a in arms):
            raise JourneyDefinitionError(f"{ipath}.name", f"{name!r} is taken")
        when = None
        if "when" in item:
            try:
                when = parse_condition(item["when"], f"{ipath}.when")
            except ConditionError as exc:
                raise JourneyDefinitionError(exc.path, exc.reason) from exc
        context = _filters(item.get("context"), ipath)
        if when is None and not context:
            raise JourneyDefinitionError(ipath, "needs a when condition or context filters")
        arms.append(Arm(name, when, context, _next(item, "next", ipath, following)))
    return tuple(arms)


def _split(raw: dict[str, Any], path: str, following: str | None) -> Split:
    items = _required(raw, "variants", path)
    if not isinstance(items, list) or not items:
        raise JourneyDefinitionError(f"{path}.variants", "needs a non-empty list")
    variants: list[Variant] = []
    for i, item in enumerate(items):
        ipath = f"{path}.variants[{i}]"
        if not isinstance(item, dict):
            raise JourneyDefinitionError(ipath, "must be an object")
        _only(item, {"name", "weight", "next"}, ipath)
        name = _text(_required(item, "name", ipath), f"{ipath}.name")
        if name == "holdout" or name in (v.name for v in variants):
            raise JourneyDefinitionError(f"{ipath}.name", f"{name!r} is taken")
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise JourneyDefinitionError(f"{ipath}.weight", "must be a positive number")
        variants.append(Variant(name, float(weight), _next(item, "next", ipath, following)))
    holdout = raw.get("holdout", 0)
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) or not 0 <= holdout < 100:
        raise JourneyDefinitionError(f"{path}.holdout", "a percentage from 0 to below 100")
    return Split(raw["id"], tuple(variants), float(holdout))


def _channel(raw: Any, path: str) -> str | tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if raw == "auto":
        return "auto"
    if not isinstance(items, list) or not items:
        raise JourneyDefinitionError(f"{path}.channel", "a channel, a list of channels or auto")
    for item in items:
        if item not in CHANNELS:
            raise JourneyDefinitionError(
                f"{path}.channel", f"unknown channel {item!r} (use {', '.join(CHANNELS)} or auto)"
            )
    return raw if isinstance(raw, str) else tuple(items)


def _next(raw: dict[str, Any], key: str, path: str, following: str | None) -> str | None:
    if key not in raw:
        return following
    value = raw[key]
    if value is None:
        return None  # explicitly: the run ends here
    return _text(value, f"{path}.{key}")


def _required(raw: dict[str, Any], key: str, path: str) -> Any:
    if key not in raw:
        raise JourneyDefinitionError(f"{path}.{key}" if path else key, "is required")
    return raw[key]


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JourneyDefinitionError(path, "must be a non-empty string")
    return value


def _only(raw: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        raise JourneyDefinitionError(path, f"unexpected keys {extra} (allowed: {sorted(allowed)})")
