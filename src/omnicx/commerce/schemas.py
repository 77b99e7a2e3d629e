"""What the commerce API returns and accepts. Money is a decimal string, as stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

PickupStatus = Literal[
    "placed",
    "picking",
    "ready_for_pickup",
    "collected",
    "partially_collected",
    "expired",
    "cancelled",
]


class Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProductRead(Read):
    id: str
    sku: str | None
    name: str | None
    price: Decimal | None
    currency: str | None
    category: str | None
    brand: str | None
    image_url: str | None
    url: str | None


class ProductWrite(BaseModel):
    sku: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=300)
    price: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    currency: str | None = Field(None, min_length=3, max_length=3)
    category: str | None = Field(None, max_length=200)
    brand: str | None = Field(None, max_length=200)
    image_url: str | None = Field(None, max_length=1000)
    url: str | None = Field(None, max_length=1000)


class StoreWrite(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field("", max_length=500)
    timezone: str = Field("UTC", max_length=64)
    opening_hours: dict[str, list[tuple[str, str]]] = Field(
        default_factory=dict, description='{"mon": [["09:00", "18:00"]], …}; missing days closed'
    )
    hold_days: int = Field(7, ge=1, le=60, description="Days a ready pickup is held.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"unknown timezone {value!r}")
        return value


class StoreRead(Read):
    id: str
    name: str
    address: str
    timezone: str
    opening_hours: dict[str, Any]
    hold_days: int


class LineRead(Read):
    product_id: str
    sku: str | None
    name: str | None
    price: Decimal | None
    quantity: int


class CartRead(Read):
    id: int
    cart_id: str | None
    status: str
    currency: str | None
    coupon: str | None
    last_activity_at: datetime
    abandoned_at: datetime | None
    items: list[LineRead]


class WishlistItemRead(Read):
    product_id: str
    sku: str | None
    name: str | None
    price: Decimal | None
    added_at: datetime


class Wishlist(BaseModel):
    items: list[WishlistItemRead]


class TransitionRead(Read):
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    at: datetime


class PickupRead(Read):
    id: int
    order_id: str
    store_id: str
    profile_id: str | None
    status: str
    code: str | None
    qr_payload: str | None = None
    ready_at: datetime | None
    expires_at: datetime | None
    transitions: list[TransitionRead] = Field(default_factory=list)


class OrderItemRead(LineRead):
    category: str | None
    collected_quantity: int


class OrderRead(Read):
    id: str
    profile_id: str | None
    status: str
    channel: str
    store_id: str | None
    fulfillment: str
    currency: str | None
    total: Decimal
    subtotal: Decimal | None
    discount: Decimal | None
    refunded: Decimal
    coupon: str | None
    placed_at: datetime
    items: list[OrderItemRead]
    pickup: PickupRead | None


class OrderList(BaseModel):
    items: list[OrderRead]


class PickupList(BaseModel):
    items: list[PickupRead]


class CollectedLine(BaseModel):
    product_id: str = Field(max_length=100)
    quantity: int = Field(ge=1)


class TransitionCreate(BaseModel):
    to: PickupStatus
    code: str | None = Field(None, max_length=12, description="Needed to collect.")
    override_reason: str | None = Field(
        None, max_length=500, description="Collect without the code; the reason is recorded."
    )
    items: list[CollectedLine] = Field(
        default_factory=list, description="For partial collection: what was handed over."
    )
