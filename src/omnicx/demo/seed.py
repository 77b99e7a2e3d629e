"""Generated customer histories, sent through the real ingest path.

Every customer is a Segment-shaped event stream (identify with traits and consent, browsing on
the web and in the app, carts, wishlists, orders online and in store, survey answers and a web
A/B test's exposures) checked by ``ingest.service.check_event`` and stored by
``ingest.service.ingest`` in batches, one batch per source, exactly as ``POST /v1/batch`` does; so
profiles, timelines, carts, orders, pickups and survey results are built by the capabilities
themselves. The random generator is seeded: the same ``--customers`` and ``--seed`` give the same
brand.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import SourceKind, SourceRef, ensure_source
from omnicx.db import Database, utcnow
from omnicx.demo.catalogue import CITIES, FIRST_NAMES, LAST_NAMES, PRODUCTS, STORES
from omnicx.hooks import Hooks
from omnicx.ingest.service import check_event, ingest
from omnicx.profiles.record import iso

CHUNK = 1000
SOURCES = {
    "website": SourceKind.web,
    "ios-app": SourceKind.ios,
    "stores-pos": SourceKind.pos,
    "support-desk": SourceKind.support,
}
EXPERIMENT = "checkout-button"


@dataclass
class Stream:
    """Events per source, in the order they were generated."""

    by_source: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    pickups: list[str] = field(default_factory=list)  # recent click-and-collect order ids

    def add(self, source: str, event: dict[str, Any]) -> None:
        self.by_source[source].append(event)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_source.values())


def _line(product: tuple[str, str, str, str], quantity: int = 1) -> dict[str, Any]:
    pid, name, category, price = product
    return {
        "product_id": pid,
        "sku": pid,
        "name": name,
        "category": category,
        "price": float(price),
        "quantity": quantity,
    }


def _when(at: datetime) -> str:
    return iso(at)


def customer_events(rng: random.Random, i: int, now: datetime, stream: Stream) -> None:
    """One customer's history from sign-up until now."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    user = f"c{i:05d}"
    email = f"{first}.{last}{i}@example.com".lower()
    signup = now - timedelta(days=rng.uniform(3, 540), minutes=rng.uniform(0, 600))
    mid = f"demo:{user}"
    app_user = rng.random() < 0.4
    consent: dict[str, Any] = {"email": {"marketing": rng.random() < 0.7}}
    if rng.random() < 0.3:
        consent["sms"] = {"marketing": True}
    if app_user:
        consent["push"] = {"marketing": rng.random() < 0.8}
    traits = {
        "email": email,
        "first_name": first,
        "last_name": last,
        "city": rng.choice(CITIES),
        "timezone": "Europe/Oslo",
        "phone": f"+479{i:07d}",
    }
    stream.add(
        "website",
        {
            "type": "identify",
            "messageId": f"{mid}:identify",
            "userId": user,
            "traits": traits,
            "timestamp": _when(signup),
            "context": {"consent": consent},
        },
    )
    if app_user:
        stream.add(
            "ios-app",
            {
                "type": "identify",
                "messageId": f"{mid}:app",
                "userId": user,
                "timestamp": _when(signup + timedelta(days=rng.uniform(0, 30))),
                "context": {"device": {"token": f"demo-apns-{i:05d}", "type": "ios"}},
            },
        )
    span = (now - signup).total_seconds()
    # Browsing.
    for n in range(rng.randint(2, 8)):
        at = signup + timedelta(seconds=rng.uniform(0, span))
        product = rng.choice(PRODUCTS)
        source = "ios-app" if app_user and rng.random() < 0.5 else "website"
        stream.add(
            source,
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": f"{mid}:view:{n}",
                "userId": user,
                "timestamp": _when(at),
                "properties": _line(product),
            },
        )
    # Wishlist.
    if rng.random() < 0.35:
        for n, product in enumerate(rng.sample(PRODUCTS, rng.randint(1, 3))):
            at = signup + timedelta(seconds=rng.uniform(0, span))
            stream.add(
                "website",
                {
                    "type": "track",
                    "event": "Product Added to Wishlist",
                    "messageId": f"{mid}:wish:{n}",
                    "userId": user,
                    "timestamp": _when(at),
                    "properties": _line(product),
                },
            )
    # Orders: most buy a few times, some never; loyal customers keep coming back.
    orders = min(8, int(rng.expovariate(0.55))) if rng.random() < 0.8 else 0
    exposed = rng.random() < 0.35 and (now - signup).days > 20
    variation = rng.choice(("control", "green-button"))
    if exposed:
        at = now - timedelta(days=rng.uniform(1, 20))
        stream.add(
            "website",
            {
                "type": "track",
                "event": "Experiment Viewed",
                "messageId": f"{mid}:exp",
                "userId": user,
                "timestamp": _when(at),
                "properties": {"experiment_id": EXPERIMENT, "variation_id": variation},
            },
        )
        # The green button converts a little better: an extra order for some.
        if rng.random() < (0.22 if variation == "green-button" else 0.14):
            orders += 1
    times = sorted(signup + timedelta(seconds=rng.uniform(0, span)) for _ in range(orders))
    if exposed and orders:
        times[-1] = max(times[-1], now - timedelta(days=rng.uniform(0.1, 1)))
    for n, at in enumerate(times):
        basket = [
            _line(p, rng.choice((1, 1, 1, 2))) for p in rng.sample(PRODUCTS, rng.randint(1, 3))
        ]
        total = sum(Decimal(str(p["price"])) * p["quantity"] for p in basket)
        in_store = rng.random() < 0.3
        store = rng.choice(STORES)["id"]
        order_id = f"D{i:05d}-{n}"
        props: dict[str, Any] = {
            "order_id": order_id,
            "total": float(total),
            "currency": "EUR",
            "products": basket,
        }
        recent = now - at < timedelta(days=2)
        source = (
            "stores-pos"
            if in_store
            else ("ios-app" if app_user and rng.random() < 0.5 else "website")
        )
        if in_store:
            props["store_id"] = store
        elif recent and rng.random() < 0.35:
            props.update(fulfillment="pickup", store_id=store)
            stream.pickups.append(order_id)
        stream.add(
            source,
            {
                "type": "track",
                "event": "Order Completed",
                "messageId": f"{mid}:order:{n}",
                "userId": user,
                "timestamp": _when(at),
                "properties": props,
            },
        )
        if rng.random() < 0.45:
            score = rng.choices((1, 2, 3, 4, 5), weights=(3, 4, 10, 35, 48))[0]
            stream.add(
                "website",
                {
                    "type": "track",
                    "event": "Survey Answered",
                    "messageId": f"{mid}:csat:{n}",
                    "userId": user,
                    "timestamp": _when(min(now, at + timedelta(days=2))),
                    "properties": {
                        "survey": "csat",
                        "score": score,
                        "channel": "pos" if in_store else "email",
                        **({"store_id": store} if in_store else {}),
                    },
                },
            )
        if rng.random() < 0.2:
            score = rng.choices(range(11), weights=(1, 1, 1, 2, 2, 4, 6, 10, 18, 25, 20))[0]
            stream.add(
                "website",
                {
                    "type": "track",
                    "event": "Survey Answered",
                    "messageId": f"{mid}:nps:{n}",
                    "userId": user,
                    "timestamp": _when(min(now, at + timedelta(days=7))),
                    "properties": {"survey": "nps", "score": score, "channel": "email"},
                },
            )
    # A few carts left open today: abandoned an hour after their last activity.
    if rng.random() < 0.06:
        at = now - timedelta(minutes=rng.uniform(5, 300))
        for n, product in enumerate(rng.sample(PRODUCTS, rng.randint(1, 2))):
            stream.add(
                "website",
                {
                    "type": "track",
                    "event": "Product Added",
                    "messageId": f"{mid}:cart:{n}",
                    "userId": user,
                    "timestamp": _when(at + timedelta(seconds=n)),
                    "properties": {**_line(product), "cart_id": f"cart-{user}"},
                },
            )


async def sources(db: Database) -> dict[str, SourceRef]:
    """The demo's event sources (their write keys are never needed, so never shown)."""

    async def work(session: AsyncSession) -> dict[str, SourceRef]:
        return {
            name: await ensure_source(session, name=name, kind=kind)
            for name, kind in SOURCES.items()
        }

    result: dict[str, SourceRef] = await db.transaction(work)
    return result


async def send(
    db: Database,
    hooks: Hooks,
    refs: dict[str, SourceRef],
    stream: Stream,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Ingest the stream in batches per source; returns how many events were stored."""
    stored = 0
    for name, events in stream.by_source.items():
        for start in range(0, len(events), CHUNK):
            now = utcnow()
            checked = [
                check_event(
                    i,
                    item,
                    type_hint=None,
                    batch_context={},
                    batch_sent_at=None,
                    received_at=now,
                    max_bytes=db.settings.max_event_bytes,
                )
                for i, item in enumerate(events[start : start + CHUNK])
            ]
            bad = [c for c in checked if c.event is None]
            if bad:
                raise ValueError(f"demo event refused: {bad[0].code}: {bad[0].message}")
            result = await ingest(db, hooks, source=refs[name], checked=checked, received_at=now)
            stored += result.accepted
            progress(len(checked))
    return stored
