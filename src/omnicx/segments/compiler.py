"""Segment definitions → SQL that runs on SQLite and PostgreSQL.

A definition compiles to one boolean expression over the ``profiles`` row. The same definition
compiles two ways that must agree: ``one`` (correlated subqueries, fast for the single profile an
event touched) and ``all`` (set-based ``IN``/``NOT IN`` over grouped subqueries, fast for a full
recompute). Relative windows are turned into absolute cut-offs from ``now``, so both modes give
the same answer for the same ``now``.

An aggregate compared with a value (event counts, total spent, order count) in ``all`` mode uses
``IN (… HAVING cmp)`` when a profile with no rows fails the comparison, and "not among (… HAVING
NOT cmp)" when it passes (``at most 2 orders`` includes people with none).

In ``all`` mode, subqueries stay where PostgreSQL can turn them into (anti-)joins: at the top of
an ``AND``. ``or`` over anything but traits becomes a ``UNION`` of member sets, and ``not``
(and "not among") an anti-join written ``NOT EXISTS (… FROM (members) …)``. Under ``OR``, or as
``NOT IN``, PostgreSQL runs a subquery once per profile as soon as its hash table would outgrow
``work_mem``: "reachable by push" over 1M profiles took 8.4 s that way, 1.7 s for a
hand-written query (``bench/segments.py``). ``UNION``, not ``UNION ALL``: PostgreSQL knows the
former is distinct and sizes it from its parts; it guesses 200 distinct ids in the latter, and
then looked each of 232,000 members up in ``profiles`` one by one.

JSON traits and properties: a number comparison only matches values stored as JSON numbers;
dates are ISO 8601 text compared at second precision in UTC.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.orm import aliased

from omnicx.analytics.models import computed_traits_of
from omnicx.commerce.models import Cart, CartItem, Order, OrderItem, Product, WishlistItem
from omnicx.profiles.models import Consent, ContactPoint, Event, Profile
from omnicx.segments.language import (
    And,
    CommerceAmountCond,
    CommerceItemCond,
    Compare,
    EventCond,
    LastOrderCond,
    Node,
    Not,
    NotFollowedCond,
    Or,
    PropertyFilter,
    ReachableCond,
    SegmentCond,
    TraitCond,
)
from omnicx.segments.models import SegmentMembership

Expr = ColumnElement[bool]
CHANNEL_ADDRESS = {"email": "email", "sms": "phone", "push": "push_token", "webpush": "webpush"}
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "equals": operator.eq,
}
LIVE_ORDER = ("completed", "partially_refunded")


@functools.cache
def event_aliases() -> tuple[Any, Any]:
    """Two aliases of ``events``, made once: an alias proxies every column of the table when
    first used, which cost more than running the query for one profile (about 3 ms a
    definition). Reusing them is safe: each use is a subquery of its own."""
    return aliased(Event), aliased(Event)


def iso_seconds(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


class Compiler:
    """Compiles nodes for one database dialect, one mode and one ``now``."""

    def __init__(self, dialect: str, now: datetime, mode: str = "one") -> None:
        assert mode in ("one", "all")
        self.pg = dialect == "postgresql"
        self.now = now
        self.mode = mode

    def compile(self, node: Node) -> Expr:
        set_based = self.mode == "all" and not row_only(node)
        match node:
            case And(items):
                return and_(*(self.compile(i) for i in items))
            case Or() if set_based:
                return Profile.id.in_(self.members(node))
            case Or(items):
                return or_(*(self.compile(i) for i in items))
            case Not(item) if set_based:
                return self._absent(self.members(item))
            case Not(item):
                # SQL's unknown (a missing or mistyped value) must count as false before
                # negation, or "not (age < 18)" would leave out everyone without a numeric age.
                return not_(func.coalesce(self.compile(item), false()))
            case TraitCond(key, compare, computed):
                column = computed_traits_of(Profile.id) if computed else Profile.traits
                return self.json_compare(column, key, compare)
            case EventCond():
                return self._event(node)
            case NotFollowedCond():
                return self._not_followed(node)
            case CommerceAmountCond():
                return self._commerce_amount(node)
            case LastOrderCond(compare):
                return self._last_order(compare)
            case CommerceItemCond():
                return self._commerce_item(node)
            case ReachableCond("any", _) if set_based:
                return Profile.id.in_(self.members(node))
            case ReachableCond(channel, topic):
                return self._reachable(channel, topic)
            case SegmentCond(segment_id):
                return exists().where(
                    SegmentMembership.segment_id == segment_id,
                    SegmentMembership.profile_id == Profile.id,
                    SegmentMembership.active.is_(True),
                )
        raise TypeError(f"cannot compile {node!r}")

    # --- member sets (``all`` mode) ------------------------------------------------------------

    def members(self, node: Node) -> Select[Any] | CompoundSelect[Any]:
        """The ids of the profiles ``node`` holds for, as one set."""
        parts = self._parts(node)
        return parts[0] if len(parts) == 1 else union(*parts)

    def _parts(self, node: Node) -> list[Select[Any]]:
        """Sets whose union is ``node``'s members (several for ``or``, flattened)."""
        match node:
            case Or(items):
                rows = [i for i in items if row_only(i)]
                out = [part for i in items if not row_only(i) for part in self._parts(i)]
                if rows:
                    out.append(self._where(or_(*(self.compile(i) for i in rows))))
                return out
            case ReachableCond("any", topic):
                channels = ("email", "sms", "push", "webpush")
                return [self._reachable_set(c, topic) for c in channels]
            case ReachableCond(channel, topic) if channel in CHANNEL_ADDRESS:
                return [self._reachable_set(channel, topic)]
            case SegmentCond(segment_id):
                return [
                    select(SegmentMembership.profile_id).where(
                        SegmentMembership.segment_id == segment_id,
                        SegmentMembership.active.is_(True),
                    )
                ]
        return [self._where(self.compile(node))]

    def _where(self, condition: Expr) -> Select[Any]:
        # A scan of its own: correlated with the profile of the enclosing query, it would run
        # once per profile.
        return select(Profile.id).where(condition).correlate(None)

    def _absent(self, members: Select[Any] | CompoundSelect[Any]) -> Expr:
        """Not among ``members``, as an anti-join (see the module docstring)."""
        found = members.subquery()
        return ~exists(select(literal(1)).select_from(found).where(found.c[0] == Profile.id))

    # --- JSON values -------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def json_text(self, column: Any, key: str) -> Any:
        return column[key].as_string()

    def json_number(self, column: Any, key: str) -> Any:
        if self.pg:
            return case((func.jsonb_typeof(column[key]) == "number", column[key].as_float()))
        path = self._path(key)
        return case(
            (func.json_type(column, path).in_(["integer", "real"]), func.json_extract(column, path))
        )

    def json_type(self, column: Any, key: str) -> Any:
        if self.pg:
            return func.jsonb_typeof(column[key])
        kind = func.json_type(column, self._path(key))
        return case(
            (kind.in_(["integer", "real"]), literal("number")),
            (kind.in_(["true", "false"]), literal("boolean")),
            (kind == "text", literal("string")),
            else_=kind,
        )

    def _day(self, text: Any) -> Any:
        return func.replace(func.substr(text, 1, 19), " ", "T")

    def json_compare(self, column: Any, key: str, compare: Compare) -> Expr:
        op, value = compare.op, compare.value
        text = self.json_text(column, key)
        kind = self.json_type(column, key)
        if op == "exists":
            return and_(kind.is_not(None), kind != "null")
        if op == "not_exists":
            return or_(kind.is_(None), kind == "null")
        if op in ("gt", "gte", "lt", "lte"):
            return OPS[op](self.json_number(column, key), float(value))  # type: ignore[no-any-return]
        if op in ("equals", "not_equals", "in", "not_in"):
            values = value if isinstance(value, list) else [value]
            match = or_(*(self._equals(column, key, v) for v in values))
            if op in ("equals", "in"):
                return match
            return or_(kind.is_(None), not_(match))
        if op == "contains":
            needle = str(value)
            return or_(
                and_(kind == "string", text.contains(needle, autoescape=True)),
                and_(kind == "array", self._array_contains(column, key, value)),
            )
        if op in ("before", "after"):
            cutoff = iso_seconds(datetime.fromisoformat(str(value)))
            day = self._day(text)
            return and_(kind == "string", day < cutoff if op == "before" else day > cutoff)
        if op == "within_last_days":
            cutoff = iso_seconds(self.now - timedelta(days=float(value)))
            return and_(
                kind == "string",
                self._day(text) >= cutoff,
                self._day(text) <= iso_seconds(self.now),
            )
        if op == "more_than_days_ago":
            cutoff = iso_seconds(self.now - timedelta(days=float(value)))
            return and_(kind == "string", self._day(text) < cutoff)
        raise ValueError(op)

    def _equals(self, column: Any, key: str, value: Any) -> Expr:
        kind = self.json_type(column, key)
        if isinstance(value, bool):
            word = "true" if value else "false"
            if self.pg:
                return and_(kind == "boolean", self.json_text(column, key) == word)
            return func.json_type(column, self._path(key)) == word
        if isinstance(value, int | float):
            return and_(kind == "number", self.json_number(column, key) == float(value))
        if value is None:
            return kind == "null"  # type: ignore[no-any-return]
        return and_(kind == "string", self.json_text(column, key) == str(value))

    def _array_contains(self, column: Any, key: str, value: Any) -> Expr:
        if self.pg:
            return column[key].op("@>")(func.jsonb_build_array(value))  # type: ignore[no-any-return]
        each = func.json_each(column, self._path(key)).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == value))

    # --- events --------------------------------------------------------------------------------

    def _filters(self, model: Any, where: tuple[PropertyFilter, ...]) -> list[Expr]:
        return [self.json_compare(model.properties, f.key, f.compare) for f in where]

    def _aggregate(
        self,
        base: Select[Any],
        key: Any,
        aggregate: Any,
        compare: Callable[[Any], Any],
        empty_passes: bool,
    ) -> Expr:
        """``compare(aggregate)`` per profile, with profiles without rows as ``empty``."""
        if self.mode == "one":
            value = base.with_only_columns(aggregate).where(key == Profile.id).scalar_subquery()
            return compare(func.coalesce(value, 0))  # type: ignore[no-any-return]
        grouped = base.with_only_columns(key).where(key.is_not(None)).group_by(key)
        if empty_passes:
            return self._absent(grouped.having(not_(compare(aggregate))))
        return Profile.id.in_(grouped.having(compare(aggregate)))

    def _event(self, node: EventCond) -> Expr:
        conditions = [Event.event == node.event, *self._filters(Event, node.where)]
        if node.within is not None:
            conditions += [Event.timestamp >= self.now - node.within, Event.timestamp <= self.now]
        base = select(Event.profile_id).where(*conditions)
        op = OPS[node.count_op]
        return self._aggregate(
            base, Event.profile_id, func.count(), lambda v: op(v, node.count), op(0, node.count)
        )

    def _not_followed(self, node: NotFollowedCond) -> Expr:
        x, y = event_aliases()
        followed = (
            exists()
            .where(y.profile_id == x.profile_id, y.event == node.then_event)
            .where(self._after_within(y.timestamp, x.timestamp, node.then_within))
        )
        first = select(x.profile_id).where(
            x.event == node.event,
            x.timestamp >= self.now - node.within,
            x.timestamp <= self.now - node.then_within,
            *self._filters(x, node.where),
            not_(followed),
        )
        if self.mode == "one":
            return exists(first.where(x.profile_id == Profile.id))
        return Profile.id.in_(first.where(x.profile_id.is_not(None)))

    def _after_within(self, later: Any, earlier: Any, span: timedelta) -> Expr:
        """``earlier < later <= earlier + span`` on either database."""
        seconds = span.total_seconds()
        if self.pg:
            bound = earlier + func.make_interval(0, 0, 0, 0, 0, 0, seconds)
            return and_(later > earlier, later <= bound)
        return and_(
            later > earlier, func.julianday(later) <= func.julianday(earlier) + seconds / 86400.0
        )

    # --- commerce ------------------------------------------------------------------------------

    def _orders(
        self, within: timedelta | None = None, fulfillment: str | None = None
    ) -> Select[Any]:
        stmt = select(Order.profile_id).where(Order.status.in_(LIVE_ORDER))
        if within is not None:
            stmt = stmt.where(Order.placed_at >= self.now - within, Order.placed_at <= self.now)
        if fulfillment is not None:
            stmt = stmt.where(Order.fulfillment == fulfillment)
        return stmt

    def _commerce_amount(self, node: CommerceAmountCond) -> Expr:
        base = self._orders(node.within, node.fulfillment)
        aggregate = (
            func.count()
            if node.measure == "order_count"
            else func.sum(Order.total - Order.refunded)
        )
        op, value = OPS[node.compare.op], node.compare.value
        return self._aggregate(
            base, Order.profile_id, aggregate, lambda v: op(v, value), op(0, value)
        )

    def _last_order(self, compare: Compare) -> Expr:
        cutoff = self.now - timedelta(days=float(compare.value))
        base = self._orders()
        if compare.op == "within_last_days":
            recent = base.where(Order.placed_at >= cutoff, Order.placed_at <= self.now)
            return self._exists(recent, Order.profile_id)
        latest = func.max(Order.placed_at)
        if self.mode == "one":
            value = (
                base.with_only_columns(latest)
                .where(Order.profile_id == Profile.id)
                .scalar_subquery()
            )
            return value < cutoff
        grouped = base.with_only_columns(Order.profile_id).where(Order.profile_id.is_not(None))
        return Profile.id.in_(grouped.group_by(Order.profile_id).having(latest < cutoff))

    def _exists(self, stmt: Select[Any], key: Any) -> Expr:
        if self.mode == "one":
            return exists(stmt.where(key == Profile.id))
        return Profile.id.in_(stmt.where(key.is_not(None)))

    def _item_match(self, model: Any, node: CommerceItemCond, category: Any) -> list[Expr]:
        out: list[Expr] = []
        if node.product_id is not None:
            out.append(model.product_id == node.product_id)
        if node.category is not None:
            out.append(category == node.category)
        return out

    def _commerce_item(self, node: CommerceItemCond) -> Expr:
        if node.where == "cart_has":
            category = (
                select(Product.category).where(Product.id == CartItem.product_id).scalar_subquery()
            )
            stmt = (
                select(Cart.profile_id)
                .join(CartItem, CartItem.cart_pk == Cart.id)
                .where(
                    Cart.status.in_(("active", "abandoned")),
                    *self._item_match(CartItem, node, category),
                )
            )
            return self._exists(stmt, Cart.profile_id)
        if node.where == "wishlist_has":
            category = (
                select(Product.category)
                .where(Product.id == WishlistItem.product_id)
                .scalar_subquery()
            )
            stmt = select(WishlistItem.profile_id).where(
                *self._item_match(WishlistItem, node, category)
            )
            return self._exists(stmt, WishlistItem.profile_id)
        bought_category = func.coalesce(
            OrderItem.category,
            select(Product.category).where(Product.id == OrderItem.product_id).scalar_subquery(),
        )
        stmt = (
            select(Order.profile_id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .where(
                Order.status.in_(LIVE_ORDER), *self._item_match(OrderItem, node, bought_category)
            )
        )
        return self._exists(stmt, Order.profile_id)

    # --- reachability --------------------------------------------------------------------------

    def _reachable(self, channel: str, topic: str) -> Expr:
        if channel == "any":
            return or_(*(self._reachable(c, topic) for c in ("email", "sms", "push", "webpush")))
        has_address: Expr = true()
        if channel in CHANNEL_ADDRESS:
            has_address = exists().where(
                ContactPoint.profile_id == Profile.id, ContactPoint.kind == CHANNEL_ADDRESS[channel]
            )
        return and_(has_address, self._consented(Profile.id, channel, topic))

    def _consented(self, owner: Any, channel: str, topic: str) -> Expr:
        scope = and_(
            Consent.profile_id == owner,
            Consent.channel.in_((channel, "all")),
            Consent.topic.in_((topic, "all")),
        )
        granted = exists().where(scope, Consent.status == "granted")
        denied = exists().where(scope, Consent.status == "denied")
        return and_(granted, not_(denied))

    def _reachable_set(self, channel: str, topic: str) -> Select[Any]:
        """Reachable profiles, from their addresses (far fewer rows than profiles)."""
        return select(ContactPoint.profile_id).where(
            ContactPoint.kind == CHANNEL_ADDRESS[channel],
            self._consented(ContactPoint.profile_id, channel, topic),
        )


def row_only(node: Node) -> bool:
    """Whether ``node`` reads only the profile row (traits): no subquery to keep joinable."""
    match node:
        case And(items) | Or(items):
            return all(row_only(i) for i in items)
        case Not(item):
            return row_only(item)
        case TraitCond():
            return True
    return False
