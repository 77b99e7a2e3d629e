"""Commerce API: a profile's orders, cart and wishlist; orders and pickup transitions; stores;
products. A store associate sees and acts on its own store only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import READERS, require
from omnicx.auth.service import Role, Staff
from omnicx.commerce import service
from omnicx.commerce.pickups import Collected, Pickups, TransitionRequest
from omnicx.commerce.schemas import (
    CartRead,
    OrderList,
    OrderRead,
    PickupList,
    PickupStatus,
    ProductRead,
    ProductWrite,
    StoreRead,
    StoreWrite,
    TransitionCreate,
    Wishlist,
)
from omnicx.db import Database, Db, utcnow
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.profiles.router import find_profile

router = APIRouter(prefix="/api", tags=["commerce"])

Reader = Annotated[Staff, Depends(require(*READERS))]
PickupActor = Annotated[Staff, Depends(require(Role.admin, Role.agent, Role.store_associate))]
Admin = Annotated[Staff, Depends(require(Role.admin))]
CatalogueWriter = Annotated[Staff, Depends(require(Role.admin, Role.marketer))]


def ensure_store(staff: Staff, store_id: str | None) -> None:
    """A store associate may only see and act on its own store."""
    if staff.role is Role.store_associate and store_id != staff.store_id:
        raise ApiError(403, "forbidden", "this belongs to another store")


def _secret(db: Database) -> str:
    return db.settings.secret_key.get_secret_value()


@router.get("/profiles/{external_id}/orders", response_model=OrderList)
async def profile_orders(
    db: Db, _staff: Reader, external_id: str, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> OrderList:
    """The profile's orders from every channel, newest first, with items and pickups."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        items = await service.list_orders(
            session, profile_id=profile.id, limit=limit, secret=_secret(db)
        )
    return OrderList(items=items)


@router.get("/profiles/{external_id}/cart", response_model=CartRead | None)
async def profile_cart(db: Db, _staff: Reader, external_id: str) -> CartRead | None:
    """The profile's open cart (active or abandoned), or null."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return await service.get_cart(session, profile_id=profile.id)


@router.get("/profiles/{external_id}/wishlist", response_model=Wishlist)
async def profile_wishlist(db: Db, _staff: Reader, external_id: str) -> Wishlist:
    """The profile's wishlist, newest first."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        return Wishlist(items=await service.get_wishlist(session, profile_id=profile.id))


@router.get("/orders/{order_id}", response_model=OrderRead)
async def get_order(db: Db, staff: Reader, order_id: str) -> OrderRead:
    """One order with its items and pickup (store associates: their store's orders only)."""
    async with db.session() as session:
        order = await service.get_order(session, order_id=order_id)
        if order is None:
            raise ApiError(404, "order_not_found", f"no order {order_id!r}")
        ensure_store(staff, order.store_id)
        return (await service.read_orders(session, [order], secret=_secret(db)))[0]


@router.post("/orders/{order_id}/transitions", response_model=OrderRead)
async def transition_pickup(
    db: Db, hooks: AppHooks, staff: PickupActor, order_id: str, body: TransitionCreate
) -> OrderRead:
    """Move the order's pickup along its lifecycle (409 if the move is not allowed)."""
    pickups = Pickups(db.settings, hooks)

    async def work(session: AsyncSession) -> OrderRead:
        order = await service.get_order(session, order_id=order_id)
        if order is None:
            raise ApiError(404, "order_not_found", f"no order {order_id!r}")
        ensure_store(staff, order.store_id)
        pickup = await service.pickup_of_order(session, order_id=order_id)
        if pickup is None:
            raise ApiError(409, "not_click_and_collect", "this order has no pickup")
        request = TransitionRequest(
            to=body.to,
            actor=f"{staff.role.value}:{staff.name}",
            code=body.code,
            override_reason=body.override_reason,
            items=[Collected(i.product_id, i.quantity) for i in body.items],
        )
        await pickups.transition(session, pickup, request, utcnow())
        await session.flush()
        return (await service.read_orders(session, [order], secret=_secret(db)))[0]

    return await db.transaction(work)


@router.get("/stores", response_model=list[StoreRead])
async def list_stores(db: Db, _staff: Reader) -> list[StoreRead]:
    """Every store."""
    async with db.session() as session:
        return await service.list_stores(session)


@router.put("/stores/{store_id}", response_model=StoreRead)
async def put_store(db: Db, _staff: Admin, store_id: str, body: StoreWrite) -> StoreRead:
    """Create or replace a store (name, address, timezone, opening hours, hold period)."""

    async def work(session: AsyncSession) -> StoreRead:
        return await service.put_store(session, store_id=store_id, data=body)

    return await db.transaction(work)


@router.get("/stores/{store_id}/pickups", response_model=PickupList)
async def store_pickups(
    db: Db,
    staff: Reader,
    store_id: str,
    status: Annotated[list[PickupStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> PickupList:
    """The store's pickups, oldest first, optionally by status (repeat `status=`)."""
    ensure_store(staff, store_id)
    async with db.session() as session:
        items = await service.store_pickups(
            session, store_id=store_id, statuses=status or [], secret=_secret(db), limit=limit
        )
    return PickupList(items=items)


@router.get("/products", response_model=list[ProductRead])
async def list_products(
    db: Db,
    _staff: Reader,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ProductRead]:
    """The catalogue, filtered by text or category."""
    async with db.session() as session:
        return await service.list_products(session, q=q, category=category, limit=limit)


@router.put("/products/{product_id}", response_model=ProductRead)
async def put_product(
    db: Db, _staff: CatalogueWriter, product_id: str, body: ProductWrite
) -> ProductRead:
    """Create a product or update the fields given."""

    async def work(session: AsyncSession) -> ProductRead:
        return await service.put_product(session, product_id=product_id, data=body)

    return await db.transaction(work)
