"""``omnicx demo``: a realistic brand to explore, and the seed's story played for one customer.

It seeds Fjellstad Outdoor (three stores, an outdoor catalogue), a few thousand customers with
histories across the website, the app, the stores' tills and the support desk (consents, push
tokens, browsing, wishlists, carts, orders, click-and-collect pickups, CSAT and NPS answers, a
web A/B test, chats with the bot), loads the starter segments and the example journeys
(published), and refreshes the computed traits (CLV, P(alive), RFM). The logins, the journeys and
Ana Berg's story come first, so a console opened while the customers still arrive already has
something to show (``make run`` serves while the demo seeds); it ends by printing what to open.

Everything goes through the capabilities' own paths: events through ``ingest``, stores and
products through ``commerce``, pickup moves through ``commerce.pickups``, segments, journeys and
analytics through their services. It creates one staff user per role, all with the password
``--password`` (default ``demo-password``, printed), and refuses to run when ``OMNICX_ENV`` is
``production``. ``--if-empty`` does nothing when staff users already exist, so ``make run`` can
call it every time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.analytics import service as analytics
from omnicx.auth import users
from omnicx.auth.service import Role
from omnicx.commerce import service as commerce
from omnicx.commerce.pickups import Pickups, TransitionRequest
from omnicx.commerce.schemas import ProductWrite, StoreWrite
from omnicx.db import Database, utcnow
from omnicx.demo import conversations as demo_conversations
from omnicx.demo import seed, story
from omnicx.demo.catalogue import HOURS, PRODUCTS, STORES
from omnicx.hooks import Hooks
from omnicx.journeys import loader
from omnicx.messaging.brand import save_brand
from omnicx.messaging.schemas import BrandKit
from omnicx.profiles import service as profiles
from omnicx.profiles.record import rules_from
from omnicx.segments import service as segments

DEFAULT_PASSWORD = "demo-password"
STAFF = [
    ("admin@demo.omnicx", "Alex Admin", Role.admin, None),
    ("marketer@demo.omnicx", "Mia Marketer", Role.marketer, None),
    ("agent@demo.omnicx", "Aksel Agent", Role.agent, None),
    ("store@demo.omnicx", "Sofie Store", Role.store_associate, "oslo-1"),
    ("analyst@demo.omnicx", "Ivar Analyst", Role.analyst, None),
]

BRAND = BrandKit.model_validate(
    {
        "name": "Fjellstad Outdoor",
        "colors": {"primary": "#1d3b2a", "accent": "#c2410c", "background": "#f5f5f0"},
        "from_email": "hello@fjellstad.example",
        "from_name": "Fjellstad Outdoor",
        "sign_off": "See you on the trail,\nFjellstad Outdoor",
        "legal_address": "Fjellstad Outdoor AS, Karl Johans gate 12, 0154 Oslo",
    }
)

Say = Callable[[str], None]


@dataclass
class DemoReport:
    customers: int
    events: int
    seconds: float
    pickup_code: str | None


async def has_staff(db: Database) -> bool:
    async with db.session() as session:
        return bool(await users.list_all(session))


async def _brand(db: Database, password: str) -> None:
    async def work(session: AsyncSession) -> None:
        for s in STORES:
            data = StoreWrite.model_validate({**s, "opening_hours": HOURS, "hold_days": 7})
            await commerce.put_store(session, store_id=s["id"], data=data)
        for pid, name, category, price in PRODUCTS:
            await commerce.put_product(
                session,
                product_id=pid,
                data=ProductWrite.model_validate(
                    {
                        "sku": pid,
                        "name": name,
                        "category": category,
                        "price": price,
                        "currency": "EUR",
                        "brand": "Fjellstad",
                    }
                ),
            )
        await save_brand(session, kit=BRAND, now=utcnow())
        for email, name, role, store in STAFF:
            if await users.get_by_email(session, email=email) is None:
                await users.create(
                    session, email=email, password=password, role=role, name=name, store_id=store
                )

    await db.transaction(work)


async def _pickups(db: Database, hooks: Hooks, order_ids: list[str], rng: random.Random) -> None:
    """Spread today's click-and-collect orders over their states, as a store's day would."""
    pickups = Pickups(db.settings, hooks)
    for order_id in order_ids:
        roll = rng.random()
        steps = (
            []
            if roll < 0.2
            else ["picking"]
            if roll < 0.4
            else ["picking", "ready_for_pickup"]
            if roll < 0.8
            else ["picking", "ready_for_pickup", "collected"]
        )

        async def work(
            session: AsyncSession, order_id: str = order_id, steps: list[str] = steps
        ) -> None:
            for to in steps:
                pickup = await commerce.pickup_of_order(session, order_id=order_id)
                assert pickup is not None
                request = TransitionRequest(
                    to=to, actor="store_associate:Sofie Store", code=pickup.code
                )
                await pickups.transition(session, pickup, request, utcnow())
                await session.flush()

        await db.transaction(work)


async def _profile_ids(db: Database, external_ids: list[str]) -> list[str]:
    async with db.session() as session:
        found = [
            await profiles.get_by_external_id(session, external_id=e, rules=rules_from(db.settings))
            for e in external_ids
        ]
    return [p.id for p in found if p is not None]


async def _segments_and_journeys(db: Database) -> list[str]:
    from importlib import resources

    import yaml

    from omnicx.errors import ApiError
    from omnicx.segments.schemas import SegmentCreate

    folder = resources.files("omnicx.segments") / "starter"
    items = [
        SegmentCreate.model_validate(yaml.safe_load(f.read_text(encoding="utf-8")))
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".yaml")
    ]

    async def work(session: AsyncSession) -> list[str]:
        pending = list(items)
        while pending:  # segments built on others come after them
            progressed = False
            for item in list(pending):
                try:
                    async with session.begin_nested():
                        await segments.put(session, data=item)
                except ApiError:
                    continue
                pending.remove(item)
                progressed = True
            if not progressed:
                await segments.put(session, data=pending[0])  # raises the real error
        loaded = await loader.load(session, loader.shipped(), publish=True, by="demo", now=utcnow())
        return [j.journey for j in loaded]

    journeys: list[str] = await db.transaction(work)
    from omnicx.journeys import catalog

    catalog.changed()
    return journeys


async def run(
    db: Database,
    hooks: Hooks,
    *,
    customers: int,
    rng_seed: int,
    password: str,
    say: Say,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> DemoReport:
    """Seed the brand, its customers, segments and journeys, then play the story."""
    started = time.monotonic()
    rng = random.Random(rng_seed)
    say("Fjellstad Outdoor: stores, catalogue, brand kit and staff logins")
    await _brand(db, password)
    refs = await seed.sources(db)
    await demo_conversations.setup(db)
    say("starter segments and the example journeys (published)")
    journeys = await _segments_and_journeys(db)
    # The story first, so the console has something to show while the customers arrive.
    code = await story.play(db, hooks, refs, say)
    stream = seed.Stream()
    now = utcnow()
    for i in range(customers):
        seed.customer_events(rng, i, now, stream)
    total = len(stream)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    say(f"{customers:,} customers, {total:,} events through the ingest path")
    stored = await seed.send(db, hooks, refs, stream, advance)
    say(f"  ingested in {time.monotonic() - started:.1f}s")
    await _pickups(db, hooks, stream.pickups, rng)
    say("support chats with the bot, some handed off to agents")
    chatting = [f"user_id:c{i:05d}" for i in rng.sample(range(customers), max(5, customers // 50))]
    await demo_conversations.seed(db, hooks, await _profile_ids(db, chatting), rng)
    say("computed traits: CLV, P(alive), RFM")
    await analytics.refresh_now(db, db.settings, hooks=hooks)
    say(f"journeys live: {', '.join(journeys)}")
    return DemoReport(customers, stored, time.monotonic() - started, code)
