"""Click-and-collect: the pickup state machine, its codes, timers and timeline events.

::

    placed ──> picking ──> ready_for_pickup ──> collected
       │          │            │   │     └──> partially_collected ──> collected
       │          │            │   │              (again, as more is handed over)
       │          │            │   └──> expired  <───────────┘ (hold period over)
       └──────────┴────────────┴──────> cancelled  (from any open state)

Anything else is refused (409). Every transition is recorded (who, when, from, to, why) and adds
a timeline event for journeys to act on. Ready-for-pickup draws a code of six characters from an
alphabet without look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B), unique among the store's open
pickups, and a signed QR payload; the hold period is the store's ``hold_days``; a reminder event
fires ``OMNICX_PICKUP_REMINDER_HOURS`` before expiry. Collecting needs the code, or an override
with a reason (recorded).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import timers
from omnicx.commerce.models import Order, OrderItem, Pickup, PickupTransition, Store
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.profiles.internal import record_internal
from omnicx.settings import Settings

CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
OPEN = ("placed", "picking", "ready_for_pickup", "partially_collected")
LEGAL: dict[str, tuple[str, ...]] = {
    "placed": ("picking", "cancelled"),
    "picking": ("ready_for_pickup", "cancelled"),
    "ready_for_pickup": ("collected", "partially_collected", "expired", "cancelled"),
    "partially_collected": ("collected", "partially_collected", "expired", "cancelled"),
    "collected": (),
    "expired": (),
    "cancelled": (),
}
EVENT_OF = {
    "picking": "Pickup Picking Started",
    "ready_for_pickup": "Pickup Ready",
    "collected": "Order Collected",
    "partially_collected": "Order Partially Collected",
    "expired": "Pickup Expired",
    "cancelled": "Pickup Cancelled",
}
REMIND_TIMER = "pickup.remind"
EXPIRE_TIMER = "pickup.expire"


@dataclass(frozen=True)
class Collected:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class TransitionRequest:
    to: str
    actor: str
    code: str | None = None
    override_reason: str | None = None
    items: Sequence[Collected] = ()


def qr_payload(secret: str, order_id: str, code: str) -> str:
    body = f"OMNICX-PICKUP:{order_id}:{code}"
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{body}:{sig}"


async def _new_code(session: AsyncSession, store_id: str) -> str:
    taken = set(
        (
            await session.execute(
                select(Pickup.code).where(
                    Pickup.store_id == store_id, Pickup.status.in_(OPEN), Pickup.code.is_not(None)
                )
            )
        ).scalars()
    )
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


class Pickups:
    """Transitions of click-and-collect pickups; one per process, with the settings and hooks."""

    def __init__(self, settings: Settings, hooks: Hooks) -> None:
        self.settings = settings
        self.hooks = hooks
        self.reminder = timedelta(hours=settings.pickup_reminder_hours)

    def register(self) -> None:
        self.hooks.timer(REMIND_TIMER, self._remind)
        self.hooks.timer(EXPIRE_TIMER, self._expire)

    async def transition(
        self, session: AsyncSession, pickup: Pickup, request: TransitionRequest, now: datetime
    ) -> Pickup:
        if request.to not in LEGAL:
            raise ApiError(422, "unknown_status", f"no pickup status {request.to!r}")
        if request.to not in LEGAL[pickup.status]:
            raise ApiError(
                409,
                "illegal_transition",
                f"a pickup cannot go from {pickup.status!r} to {request.to!r}",
                allowed=list(LEGAL[pickup.status]),
            )
        order = await session.get(Order, pickup.order_id)
        assert order is not None
        extra: dict[str, Any] = {}
        reason = request.override_reason
        if request.to in ("collected", "partially_collected"):
            reason = self._check_code(pickup, request)
            to = await self._collect(session, order, request)
        else:
            to = request.to
        if to == "ready_for_pickup":
            extra = await self._make_ready(session, pickup, order, now)
        if to in ("collected", "expired", "cancelled"):
            pickup.closed_at = now
            await timers.cancel(session, key=f"{REMIND_TIMER}:{pickup.id}")
            await timers.cancel(session, key=f"{EXPIRE_TIMER}:{pickup.id}")
        await self._record(session, pickup, order, to, request.actor, reason, now, extra)
        return pickup

    def _check_code(self, pickup: Pickup, request: TransitionRequest) -> str | None:
        if request.override_reason and request.override_reason.strip():
            return f"code override: {request.override_reason.strip()}"
        if not request.code:
            raise ApiError(422, "pickup_code_required", "collecting needs the pickup code")
        given = request.code.strip().upper()
        if pickup.code is None or not hmac.compare_digest(given, pickup.code):
            raise ApiError(422, "wrong_pickup_code", "the pickup code does not match")
        return None

    async def _collect(
        self, session: AsyncSession, order: Order, request: TransitionRequest
    ) -> str:
        items = list(
            (
                await session.execute(select(OrderItem).where(OrderItem.order_id == order.id))
            ).scalars()
        )
        if request.to == "collected" or not request.items:
            for item in items:
                item.collected_quantity = item.quantity
        else:
            by_product = {i.product_id: i for i in items}
            for part in request.items:
                line = by_product.get(part.product_id)
                if line is None:
                    raise ApiError(422, "unknown_item", f"{part.product_id!r} is not in the order")
                line.collected_quantity = min(
                    line.quantity, line.collected_quantity + part.quantity
                )
        done = all(i.collected_quantity >= i.quantity for i in items)
        return "collected" if done else "partially_collected"

    async def _make_ready(
        self, session: AsyncSession, pickup: Pickup, order: Order, now: datetime
    ) -> dict[str, Any]:
        store = await session.get(Store, pickup.store_id)
        hold_days = store.hold_days if store is not None else 7
        pickup.code = await _new_code(session, pickup.store_id)
        pickup.ready_at = now
        pickup.expires_at = now + timedelta(days=hold_days)
        payload = {"pickup": pickup.id}
        remind_at = pickup.expires_at - self.reminder
        if remind_at > now:
            await timers.schedule(
                session,
                kind=REMIND_TIMER,
                key=f"{REMIND_TIMER}:{pickup.id}",
                due_at=remind_at,
                payload=payload,
            )
        await timers.schedule(
            session,
            kind=EXPIRE_TIMER,
            key=f"{EXPIRE_TIMER}:{pickup.id}",
            due_at=pickup.expires_at,
            payload=payload,
        )
        secret = self.settings.secret_key.get_secret_value()
        return {
            "pickup_code": pickup.code,
            "qr_payload": qr_payload(secret, order.id, pickup.code),
            "expires_at": pickup.expires_at.isoformat(),
            "store_name": store.name if store is not None else pickup.store_id,
            "store_address": store.address if store is not None else "",
        }

    async def _record(
        self,
        session: AsyncSession,
        pickup: Pickup,
        order: Order,
        to: str,
        actor: str,
        reason: str | None,
        now: datetime,
        extra: dict[str, Any],
    ) -> None:
        from_status = pickup.status
        pickup.status = to
        session.add(
            PickupTransition(
                pickup_id=pickup.id,
                from_status=from_status,
                to_status=to,
                actor=actor,
                reason=reason,
                at=now,
            )
        )
        await session.flush()
        count = len(
            (
                await session.execute(
                    select(PickupTransition.id).where(PickupTransition.pickup_id == pickup.id)
                )
            ).all()
        )
        await self._emit(session, pickup, order, EVENT_OF[to], f"{to}:{count}", now, extra)

    async def _emit(
        self,
        session: AsyncSession,
        pickup: Pickup,
        order: Order,
        event: str,
        suffix: str,
        now: datetime,
        extra: dict[str, Any],
    ) -> None:
        if pickup.profile_id is None:
            return
        await record_internal(
            session,
            profile_id=pickup.profile_id,
            event=event,
            message_id=f"pickup:{pickup.id}:{suffix}",
            timestamp=now,
            properties={
                "order_id": order.id,
                "store_id": pickup.store_id,
                "status": pickup.status,
                "total": float(order.total),
                "currency": order.currency,
                **extra,
            },
            hooks=self.hooks,
        )

    async def _remind(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        pickup = await session.get(Pickup, payload["pickup"])
        if pickup is None or pickup.status not in ("ready_for_pickup", "partially_collected"):
            return
        order = await session.get(Order, pickup.order_id)
        assert order is not None
        extra = {
            "pickup_code": pickup.code,
            "expires_at": pickup.expires_at.isoformat() if pickup.expires_at else None,
        }
        await self._emit(session, pickup, order, "Pickup Reminder", "reminder", now, extra)

    async def _expire(self, session: AsyncSession, payload: dict[str, Any], now: datetime) -> None:
        pickup = await session.get(Pickup, payload["pickup"])
        if pickup is None or "expired" not in LEGAL[pickup.status]:
            return
        await self.transition(session, pickup, TransitionRequest(to="expired", actor="system"), now)
