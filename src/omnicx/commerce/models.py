"""Catalogue, stores, carts, wishlists, orders and click-and-collect pickups.

Money is stored as ``Numeric(12, 2)`` in the order's currency. Rows point at profiles by id; when
profiles merge, :func:`omnicx.commerce.projector.on_merge` moves them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from omnicx.db import Base, BigId, JSONType, UTCDateTime, utcnow

Money = Numeric(12, 2)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(300))
    price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    category: Mapped[str | None] = mapped_column(String(200), index=True)
    brand: Mapped[str | None] = mapped_column(String(200))
    image_url: Mapped[str | None] = mapped_column(String(1000))
    url: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "18:00"]], ...}; a missing day is closed.
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    hold_days: Mapped[int] = mapped_column(Integer, default=7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cart(Base):
    __tablename__ = "carts"
    __table_args__ = (Index("ix_carts_profile_status", "profile_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str | None] = mapped_column(String(32))
    cart_id: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(12))  # active | abandoned | converted
    currency: Mapped[str | None] = mapped_column(String(3))
    coupon: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)
    abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    converted_order_id: Mapped[str | None] = mapped_column(String(200))


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("cart_pk", "product_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cart_pk: Mapped[int] = mapped_column(ForeignKey("carts.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(String(100), index=True)
    sku: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WishlistItem(Base):
    __tablename__ = "wishlist_items"
    __table_args__ = (UniqueConstraint("profile_id", "product_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    profile_id: Mapped[str | None] = mapped_column(String(32), index=True)
    product_id: Mapped[str] = mapped_column(String(100), index=True)
    wishlist_id: Mapped[str | None] = mapped_column(String(200))
    sku: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    price: Mapped[Decimal | None] = mapped_column(Money)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_profile_placed", "profile_id", "placed_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the shop's order_id
    profile_id: Mapped[str | None] = mapped_column(String(32))
    # completed | partially_refunded | refunded | cancelled
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))  # web | app | store | phone
    store_id: Mapped[str | None] = mapped_column(String(100), index=True)
    fulfillment: Mapped[str] = mapped_column(String(10))  # delivery | pickup | in_store
    currency: Mapped[str | None] = mapped_column(String(3))
    subtotal: Mapped[Decimal | None] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    revenue: Mapped[Decimal | None] = mapped_column(Money)
    shipping: Mapped[Decimal | None] = mapped_column(Money)
    tax: Mapped[Decimal | None] = mapped_column(Money)
    discount: Mapped[Decimal | None] = mapped_column(Money)
    refunded: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    coupon: Mapped[str | None] = mapped_column(String(100))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(String(100), index=True)
    sku: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(200))
    price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    collected_quantity: Mapped[int] = mapped_column(Integer, default=0)
    refunded_quantity: Mapped[int] = mapped_column(Integer, default=0)


class Pickup(Base):
    """The click-and-collect side of an order (see :mod:`omnicx.commerce.pickups`)."""

    __tablename__ = "pickups"
    __table_args__ = (Index("ix_pickups_store_status", "store_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), unique=True)
    store_id: Mapped[str] = mapped_column(String(100))
    profile_id: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(12))
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PickupTransition(Base):
    __tablename__ = "pickup_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pickup_id: Mapped[int] = mapped_column(ForeignKey("pickups.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
