"""Segment e-commerce spec v2 events → carts, wishlists, orders, pickups and the catalogue.

Runs inside the ingest transaction (a projector, see :mod:`omnicx.hooks`) for events that were
just stored, so a resent event (same ``messageId``) changes nothing, and an acknowledged order is
visible at once.

Where the spec is silent:

- one open cart per profile unless events carry ``cart_id``; adding to an abandoned cart
  reactivates it; ``Cart Viewed`` / ``Checkout Started`` with ``products`` replace its items;
- an order's ``channel`` is ``properties.channel`` (web, app, store, phone), else from the
  source kind (ios/android → app, pos → store, support → phone, others → web);
- click-and-collect is ``properties.fulfillment == "pickup"`` (or a ``shipping_method`` of
  ``pickup`` / ``click_and_collect``) with a ``store_id``; it opens a pickup in ``placed``;
- ``Order Refunded`` refunds ``total`` (or its ``products``); the order is ``refunded`` once the
  refunds reach its total, ``partially_refunded`` before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.commerce.models import Cart, CartItem, Order, OrderItem, Pickup, Product, WishlistItem
from omnicx.db import dialect_insert
from omnicx.hooks import Hooks, StoredEvent
from omnicx.profiles.internal import record_internal
from omnicx.settings import Settings

CART_EVENTS = {"Product Added", "Product Removed", "Cart Viewed", "Checkout Started"}
ORDER_EVENTS = {"Order Completed", "Order Updated", "Order Refunded", "Order Cancelled"}
WISHLIST_EVENTS = {"Product Added to Wishlist", "Product Removed from Wishlist"}
HANDLED = CART_EVENTS | ORDER_EVENTS | WISHLIST_EVENTS | {"Product Viewed", "Coupon Applied"}
CHANNEL_OF_SOURCE = {"ios": "app", "android": "app", "pos": "store", "support": "phone"}
PICKUP_WORDS = {"pickup", "click_and_collect", "click-and-collect", "collect"}
OPEN_CART = ("active", "abandoned")
ABANDON_TIMER = "cart.abandon"


def money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else None


def quantity(value: Any, default: int = 1) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return default


def text(value: Any, limit: int) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)[:limit]


def product_lines(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The products an event is about: ``products[]``, or the event itself (Product Added)."""
    raw = props.get("products")
    items = raw if isinstance(raw, list) else [props]
    lines = []
    for item in items:
        if not isinstance(item, dict):
            continue
        product_id = text(item.get("product_id") or item.get("sku") or item.get("id"), 100)
        if product_id:
            lines.append({**item, "product_id": product_id})
    return lines


class Projector:
    """Applies e-commerce events; one instance per process, configured from settings."""

    def __init__(self, settings: Settings, hooks: Hooks) -> None:
        self.idle = timedelta(minutes=settings.cart_abandon_minutes)
        self.hooks = hooks

    async def abandon(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        """Timer: the cart has been idle long enough; mark it and tell the timeline."""
        cart = await session.get(Cart, payload["cart"])
        if cart is None or cart.status != "active" or cart.profile_id is None:
            return
        if now < cart.last_activity_at + self.idle:  # activity moved the timer; not yet
            return
        items = list(
            (await session.execute(select(CartItem).where(CartItem.cart_pk == cart.id))).scalars()
        )
        if not items:
            return
        cart.status, cart.abandoned_at = "abandoned", now
        value = sum(((i.price or Decimal(0)) * i.quantity for i in items), Decimal(0))
        await record_internal(
            session,
            profile_id=cart.profile_id,
            event="Cart Abandoned",
            message_id=f"cart:{cart.id}:abandoned:{cart.last_activity_at.isoformat()}",
            timestamp=now,
            properties={
                "cart_id": cart.cart_id or str(cart.id),
                "value": float(value),
                "currency": cart.currency,
                "coupon": cart.coupon,
                "idle_minutes": int(self.idle.total_seconds() // 60),
                "products": [
                    {
                        "product_id": i.product_id,
                        "sku": i.sku,
                        "name": i.name,
                        "price": float(i.price) if i.price is not None else None,
                        "quantity": i.quantity,
                    }
                    for i in items
                ],
            },
            hooks=self.hooks,
        )

    async def __call__(self, session: AsyncSession, events: Sequence[StoredEvent]) -> None:
        handled = sorted((e for e in events if e.event in HANDLED), key=lambda e: e.timestamp)
        if not handled:
            return
        lines_of = {id(ev): product_lines(ev.properties) for ev in handled}
        await self._catalogue(session, [(ev, lines_of[id(ev)]) for ev in handled])
        touched: dict[int, Cart] = {}
        for ev in handled:
            lines, name = lines_of[id(ev)], ev.event
            if name in CART_EVENTS:
                cart = await self._cart(session, ev, lines)
                touched[cart.id] = cart
            elif name in WISHLIST_EVENTS:
                await self._wishlist(session, ev, lines)
            elif name == "Coupon Applied":
                await self._coupon(session, ev)
            elif name == "Order Completed":
                await self._order_completed(session, ev, lines)
            elif name == "Order Updated":
                await self._order_updated(session, ev, lines)
            elif name == "Order Refunded":
                await self._order_refunded(session, ev, lines)
            elif name == "Order Cancelled":
                await self._order_cancelled(session, ev)
        # One abandonment timer per cart the batch left open, at its last activity + idle.
        for cart in touched.values():
            if cart.status == "active":
                await timers.schedule(
                    session,
                    kind=ABANDON_TIMER,
                    key=f"{ABANDON_TIMER}:{cart.id}",
                    due_at=cart.last_activity_at + self.idle,
                    payload={"cart": cart.id},
                )

    async def _catalogue(
        self, session: AsyncSession, items: list[tuple[StoredEvent, list[dict[str, Any]]]]
    ) -> None:
        """Upsert every product the batch mentions: the latest mention of a field wins, and
        rows with the same known fields go in one statement."""
        products: dict[str, dict[str, Any]] = {}
        for ev, lines in items:
            for line in lines:
                fields = {
                    "sku": text(line.get("sku"), 100),
                    "name": text(line.get("name"), 300),
                    "price": money(line.get("price")),
                    "currency": text(ev.properties.get("currency") or line.get("currency"), 3),
                    "category": text(line.get("category"), 200),
                    "brand": text(line.get("brand"), 200),
                    "image_url": text(line.get("image_url"), 1000),
                    "url": text(line.get("url"), 1000),
                }
                row = products.setdefault(line["product_id"], {"id": line["product_id"]})
                row.update({k: v for k, v in fields.items() if v is not None})
                row["updated_at"] = ev.timestamp
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in products.values():
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for keys, rows in groups.items():
            stmt = dialect_insert(session, Product)
            stmt = stmt.on_conflict_do_update(
                index_elements=["id"], set_={k: stmt.excluded[k] for k in keys if k != "id"}
            )
            await session.execute(stmt, rows)

    # --- carts -----------------------------------------------------------------------------

    async def _open_cart(self, session: AsyncSession, ev: StoredEvent) -> Cart:
        cart_id = text(ev.properties.get("cart_id"), 200)
        stmt = select(Cart).where(Cart.profile_id == ev.profile_id, Cart.status.in_(OPEN_CART))
        if cart_id:
            stmt = stmt.where(Cart.cart_id == cart_id)
        cart = (
            await session.execute(stmt.order_by(Cart.last_activity_at.desc()).limit(1))
        ).scalar_one_or_none()
        if cart is None:
            cart = Cart(
                profile_id=ev.profile_id,
                cart_id=cart_id,
                status="active",
                created_at=ev.timestamp,
                last_activity_at=ev.timestamp,
            )
            session.add(cart)
            await session.flush()
        return cart

    async def _cart(
        self, session: AsyncSession, ev: StoredEvent, lines: list[dict[str, Any]]
    ) -> Cart:
        cart = await self._open_cart(session, ev)
        items = {
            i.product_id: i
            for i in (
                await session.execute(select(CartItem).where(CartItem.cart_pk == cart.id))
            ).scalars()
        }
        if ev.event == "Product Added":
            for line in lines:
                item = items.get(line["product_id"])
                if item is None:
                    session.add(_cart_item(cart.id, line, ev.timestamp))
                else:
                    item.quantity += quantity(line.get("quantity"))
                    item.price = money(line.get("price")) or item.price
        elif ev.event == "Product Removed":
            for line in lines:
                item = items.get(line["product_id"])
                if item is None:
                    continue
                item.quantity -= quantity(line.get("quantity"), default=item.quantity)
                if item.quantity <= 0:
                    await session.delete(item)
        elif isinstance(ev.properties.get("products"), list):
            for item in items.values():
                await session.delete(item)
            await session.flush()
            for line in lines:
                session.add(_cart_item(cart.id, line, ev.timestamp))
        cart.currency = text(ev.properties.get("currency"), 3) or cart.currency
        cart.last_activity_at = max(cart.last_activity_at, ev.timestamp)
        cart.status, cart.abandoned_at = "active", None
        await session.flush()
        return cart

    async def _coupon(self, session: AsyncSession, ev: StoredEvent) -> None:
        coupon = text(ev.properties.get("coupon_name") or ev.properties.get("coupon_id"), 100)
        order_id = text(ev.properties.get("order_id"), 200)
        if order_id and (order := await session.get(Order, order_id)) is not None:
            order.coupon = coupon
            return
        cart = await self._open_cart(session, ev)
        cart.coupon = coupon

    # --- wishlists -------------------------------------------------------------------------

    async def _wishlist(
        self, session: AsyncSession, ev: StoredEvent, lines: list[dict[str, Any]]
    ) -> None:
        for line in lines:
            if ev.event == "Product Removed from Wishlist":
                await session.execute(
                    delete(WishlistItem).where(
                        WishlistItem.profile_id == ev.profile_id,
                        WishlistItem.product_id == line["product_id"],
                    )
                )
                continue
            stmt = dialect_insert(session, WishlistItem).values(
                profile_id=ev.profile_id,
                product_id=line["product_id"],
                wishlist_id=text(ev.properties.get("wishlist_id"), 200),
                sku=text(line.get("sku"), 100),
                name=text(line.get("name"), 300),
                price=money(line.get("price")),
                added_at=ev.timestamp,
            )
            await session.execute(
                stmt.on_conflict_do_nothing(index_elements=["profile_id", "product_id"])
            )

    # --- orders ----------------------------------------------------------------------------

    async def _order_completed(
        self, session: AsyncSession, ev: StoredEvent, lines: list[dict[str, Any]]
    ) -> None:
        props = ev.properties
        order_id = text(props.get("order_id") or props.get("checkout_id"), 200)
        if not order_id:
            return
        order = await session.get(Order, order_id)
        if order is None:
            order = Order(
                id=order_id,
                profile_id=ev.profile_id,
                status="completed",
                channel=order_channel(props, ev.channel),
                store_id=text(props.get("store_id"), 100),
                fulfillment=fulfillment(props, ev.channel),
                placed_at=ev.timestamp,
                total=Decimal(0),
                refunded=Decimal(0),
            )
            session.add(order)
        _order_amounts(order, props, lines, ev.timestamp)
        await session.flush()
        await _replace_order_items(session, order.id, lines)
        await self._convert_cart(session, ev, order.id)
        if order.fulfillment == "pickup" and order.store_id:
            await _open_pickup(session, order, ev.timestamp)

    async def _convert_cart(self, session: AsyncSession, ev: StoredEvent, order_id: str) -> None:
        cart_id = text(ev.properties.get("cart_id"), 200)
        stmt = select(Cart).where(Cart.profile_id == ev.profile_id, Cart.status.in_(OPEN_CART))
        if cart_id:
            stmt = stmt.where(Cart.cart_id == cart_id)
        for cart in (await session.execute(stmt)).scalars():
            cart.status, cart.converted_order_id = "converted", order_id
            await timers.cancel(session, key=f"{ABANDON_TIMER}:{cart.id}")

    async def _order_updated(
        self, session: AsyncSession, ev: StoredEvent, lines: list[dict[str, Any]]
    ) -> None:
        order_id = text(ev.properties.get("order_id"), 200)
        order = await session.get(Order, order_id) if order_id else None
        if order is None:
            await self._order_completed(session, ev, lines)
            return
        _order_amounts(order, ev.properties, lines, ev.timestamp)
        if isinstance(ev.properties.get("products"), list):
            await session.flush()
            await _replace_order_items(session, order.id, lines)

    async def _order_refunded(
        self, session: AsyncSession, ev: StoredEvent, lines: list[dict[str, Any]]
    ) -> None:
        order_id = text(ev.properties.get("order_id"), 200)
        order = await session.get(Order, order_id) if order_id else None
        if order is None:
            return
        amount = money(ev.properties.get("total"))
        if amount is None and isinstance(ev.properties.get("products"), list):
            amount = sum(
                (
                    (money(x.get("price")) or Decimal(0)) * quantity(x.get("quantity"))
                    for x in lines
                ),
                Decimal(0),
            )
        order.refunded = min(
            order.total, order.refunded + (amount if amount is not None else order.total)
        )
        order.status = "refunded" if order.refunded >= order.total else "partially_refunded"
        order.updated_at = max(order.updated_at, ev.timestamp)

    async def _order_cancelled(self, session: AsyncSession, ev: StoredEvent) -> None:
        order_id = text(ev.properties.get("order_id"), 200)
        order = await session.get(Order, order_id) if order_id else None
        if order is None:
            return
        order.status = "cancelled"
        order.updated_at = max(order.updated_at, ev.timestamp)


def order_channel(props: dict[str, Any], source_channel: str) -> str:
    given = str(props.get("channel", "")).lower()
    if given in ("web", "app", "store", "phone"):
        return given
    return CHANNEL_OF_SOURCE.get(source_channel, "web")


def fulfillment(props: dict[str, Any], source_channel: str) -> str:
    given = str(props.get("fulfillment") or props.get("shipping_method") or "").lower()
    if given in PICKUP_WORDS:
        return "pickup"
    if given in ("delivery", "in_store"):
        return given
    return "in_store" if order_channel(props, source_channel) == "store" else "delivery"


def _order_amounts(
    order: Order, props: dict[str, Any], lines: list[dict[str, Any]], when: datetime
) -> None:
    for name in ("subtotal", "revenue", "shipping", "tax", "discount"):
        if (amount := money(props.get(name))) is not None:
            setattr(order, name, amount)
    total = money(props.get("total"))
    if total is None and lines:
        total = sum(
            ((money(x.get("price")) or Decimal(0)) * quantity(x.get("quantity")) for x in lines),
            Decimal(0),
        )
    if total is not None:
        order.total = total
    order.currency = text(props.get("currency"), 3) or order.currency
    order.coupon = text(props.get("coupon"), 100) or order.coupon
    order.updated_at = max(order.updated_at or when, when)


async def _replace_order_items(
    session: AsyncSession, order_id: str, lines: list[dict[str, Any]]
) -> None:
    if not lines:
        return
    await session.execute(delete(OrderItem).where(OrderItem.order_id == order_id))
    for line in lines:
        session.add(
            OrderItem(
                order_id=order_id,
                product_id=line["product_id"],
                sku=text(line.get("sku"), 100),
                name=text(line.get("name"), 300),
                category=text(line.get("category"), 200),
                price=money(line.get("price")),
                quantity=quantity(line.get("quantity")),
                collected_quantity=0,
                refunded_quantity=0,
            )
        )


async def _open_pickup(session: AsyncSession, order: Order, when: datetime) -> None:
    exists = (
        await session.execute(select(Pickup.id).where(Pickup.order_id == order.id))
    ).scalar_one_or_none()
    if exists is None:
        session.add(
            Pickup(
                order_id=order.id,
                store_id=order.store_id,
                profile_id=order.profile_id,
                status="placed",
                created_at=when,
            )
        )


def _cart_item(cart_pk: int, line: dict[str, Any], when: datetime) -> CartItem:
    return CartItem(
        cart_pk=cart_pk,
        product_id=line["product_id"],
        sku=text(line.get("sku"), 100),
        name=text(line.get("name"), 300),
        price=money(line.get("price")),
        quantity=quantity(line.get("quantity")),
        added_at=when,
    )


async def upsert_product(
    session: AsyncSession, *, product_id: str, fields: dict[str, Any], now: datetime
) -> None:
    """Insert the product, or update only the fields given."""
    stmt = dialect_insert(session, Product).values(id=product_id, updated_at=now, **fields)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={**fields, "updated_at": now})
        if fields
        else stmt.on_conflict_do_nothing(index_elements=["id"])
    )


async def on_merge(session: AsyncSession, into: str, from_: str) -> None:
    """Carts, wishlists, orders and pickups follow the person into the surviving profile."""
    for model in (Cart, Order, Pickup):
        await session.execute(
            update(model).where(model.profile_id == from_).values(profile_id=into)
        )
    mine = select(WishlistItem.product_id).where(WishlistItem.profile_id == into)
    await session.execute(
        delete(WishlistItem).where(
            WishlistItem.profile_id == from_, WishlistItem.product_id.in_(mine)
        )
    )
    await session.execute(
        update(WishlistItem).where(WishlistItem.profile_id == from_).values(profile_id=into)
    )


async def on_erase(session: AsyncSession, profile_ids: Sequence[str]) -> None:
    """Orders stay as anonymous aggregates; carts and wishlists go."""
    carts = select(Cart.id).where(Cart.profile_id.in_(profile_ids))
    await session.execute(delete(CartItem).where(CartItem.cart_pk.in_(carts)))
    await session.execute(delete(Cart).where(Cart.profile_id.in_(profile_ids)))
    await session.execute(delete(WishlistItem).where(WishlistItem.profile_id.in_(profile_ids)))
    for model in (Order, Pickup):
        await session.execute(
            update(model).where(model.profile_id.in_(profile_ids)).values(profile_id=None)
        )
