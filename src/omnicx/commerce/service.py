"""Reading commerce state, managing stores and products."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce.models import (
    Cart,
    CartItem,
    Order,
    OrderItem,
    Pickup,
    PickupTransition,
    Product,
    Store,
    WishlistItem,
)
from omnicx.commerce.pickups import qr_payload
from omnicx.commerce.projector import OPEN_CART, upsert_product
from omnicx.commerce.schemas import (
    CartRead,
    LineRead,
    OrderItemRead,
    OrderRead,
    PickupRead,
    ProductRead,
    ProductWrite,
    StoreRead,
    StoreWrite,
    TransitionRead,
    WishlistItemRead,
)
from omnicx.db import utcnow


async def get_cart(session: AsyncSession, *, profile_id: str) -> CartRead | None:
    """The profile's open cart (active or abandoned), newest first."""
    cart = (
        await session.execute(
            select(Cart)
            .where(Cart.profile_id == profile_id, Cart.status.in_(OPEN_CART))
            .order_by(Cart.last_activity_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if cart is None:
        return None
    items = (
        await session.execute(
            select(CartItem).where(CartItem.cart_pk == cart.id).order_by(CartItem.id)
        )
    ).scalars()
    return CartRead(
        id=cart.id,
        cart_id=cart.cart_id,
        status=cart.status,
        currency=cart.currency,
        coupon=cart.coupon,
        last_activity_at=cart.last_activity_at,
        abandoned_at=cart.abandoned_at,
        items=[LineRead.model_validate(i) for i in items],
    )


async def get_wishlist(session: AsyncSession, *, profile_id: str) -> list[WishlistItemRead]:
    rows = (
        await session.execute(
            select(WishlistItem)
            .where(WishlistItem.profile_id == profile_id)
            .order_by(WishlistItem.added_at.desc())
        )
    ).scalars()
    return [WishlistItemRead.model_validate(r) for r in rows]


async def list_orders(
    session: AsyncSession, *, profile_id: str, limit: int, secret: str
) -> list[OrderRead]:
    orders = (
        await session.execute(
            select(Order)
            .where(Order.profile_id == profile_id)
            .order_by(Order.placed_at.desc())
            .limit(limit)
        )
    ).scalars()
    return await read_orders(session, list(orders), secret=secret)


async def get_order(session: AsyncSession, *, order_id: str) -> Order | None:
    return await session.get(Order, order_id)


async def read_orders(
    session: AsyncSession, orders: Sequence[Order], *, secret: str
) -> list[OrderRead]:
    ids = [o.id for o in orders]
    items: dict[str, list[OrderItemRead]] = {}
    for item in (
        await session.execute(
            select(OrderItem).where(OrderItem.order_id.in_(ids)).order_by(OrderItem.id)
        )
    ).scalars():
        items.setdefault(item.order_id, []).append(OrderItemRead.model_validate(item))
    pickups = {
        p.order_id: p
        for p in (await session.execute(select(Pickup).where(Pickup.order_id.in_(ids)))).scalars()
    }
    pickup_reads = {
        r.order_id: r for r in await read_pickups(session, list(pickups.values()), secret=secret)
    }
    return [
        OrderRead(
            id=o.id,
            profile_id=o.profile_id,
            status=o.status,
            channel=o.channel,
            store_id=o.store_id,
            fulfillment=o.fulfillment,
            currency=o.currency,
            total=o.total,
            subtotal=o.subtotal,
            discount=o.discount,
            refunded=o.refunded,
            coupon=o.coupon,
            placed_at=o.placed_at,
            items=items.get(o.id, []),
            pickup=pickup_reads.get(o.id),
        )
        for o in orders
    ]


async def read_pickups(
    session: AsyncSession, pickups: Sequence[Pickup], *, secret: str
) -> list[PickupRead]:
    history: dict[int, list[TransitionRead]] = {}
    rows = await session.execute(
        select(PickupTransition)
        .where(PickupTransition.pickup_id.in_([p.id for p in pickups]))
        .order_by(PickupTransition.id)
    )
    for t in rows.scalars():
        history.setdefault(t.pickup_id, []).append(TransitionRead.model_validate(t))
    return [
        PickupRead(
            id=p.id,
            order_id=p.order_id,
            store_id=p.store_id,
            profile_id=p.profile_id,
            status=p.status,
            code=p.code,
            qr_payload=qr_payload(secret, p.order_id, p.code) if p.code else None,
            ready_at=p.ready_at,
            expires_at=p.expires_at,
            transitions=history.get(p.id, []),
        )
        for p in pickups
    ]


async def store_pickups(
    session: AsyncSession, *, store_id: str, statuses: Sequence[str], secret: str, limit: int
) -> list[PickupRead]:
    stmt = select(Pickup).where(Pickup.store_id == store_id)
    if statuses:
        stmt = stmt.where(Pickup.status.in_(statuses))
    rows = (await session.execute(stmt.order_by(Pickup.created_at).limit(limit))).scalars()
    return await read_pickups(session, list(rows), secret=secret)


async def pickup_of_order(session: AsyncSession, *, order_id: str) -> Pickup | None:
    stmt = select(Pickup).where(Pickup.order_id == order_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_stores(session: AsyncSession) -> list[StoreRead]:
    rows = (await session.execute(select(Store).order_by(Store.id))).scalars()
    return [StoreRead.model_validate(s) for s in rows]


async def get_store(session: AsyncSession, *, store_id: str) -> Store | None:
    return await session.get(Store, store_id)


async def put_store(session: AsyncSession, *, store_id: str, data: StoreWrite) -> StoreRead:
    store = await session.get(Store, store_id)
    values = data.model_dump()
    values["opening_hours"] = {k: [list(w) for w in v] for k, v in data.opening_hours.items()}
    if store is None:
        store = Store(id=store_id, created_at=utcnow(), **values)
        session.add(store)
    else:
        for key, value in values.items():
            setattr(store, key, value)
    await session.flush()
    return StoreRead.model_validate(store)


async def list_products(
    session: AsyncSession, *, q: str | None, category: str | None, limit: int
) -> list[ProductRead]:
    stmt = select(Product)
    if q:
        pattern = f"%{q}%"
        stmt = stmt.where(
            Product.name.ilike(pattern) | Product.sku.ilike(pattern) | Product.id.ilike(pattern)
        )
    if category:
        stmt = stmt.where(Product.category == category)
    rows = (await session.execute(stmt.order_by(Product.id).limit(limit))).scalars()
    return [ProductRead.model_validate(p) for p in rows]


async def put_product(session: AsyncSession, *, product_id: str, data: ProductWrite) -> ProductRead:
    await upsert_product(
        session, product_id=product_id, fields=data.model_dump(exclude_unset=True), now=utcnow()
    )
    product = await session.get(Product, product_id, populate_existing=True)
    assert product is not None
    return ProductRead.model_validate(product)
