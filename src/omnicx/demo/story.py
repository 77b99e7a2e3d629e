"""The seed's story, played through the real paths for one customer, Ana Berg.

She looks at the Alpine jacket on the website without logging in, signs in (the browsing joins
her profile), saves the jacket to her wishlist, puts it in her cart and leaves; later she
reserves it in the app for click-and-collect at the Oslo store, and the store picks it and
marks it ready, which gives her a pickup code. What is left is the store associate's part, in
the console: verify her code and hand the jacket over (the click-and-collect journey then
thanks her, and the CSAT journey asks how it went).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import SourceRef
from omnicx.commerce import service as commerce
from omnicx.commerce.pickups import Pickups, TransitionRequest
from omnicx.db import Database, utcnow
from omnicx.demo.conversations import chat
from omnicx.demo.seed import Stream, send
from omnicx.hooks import Hooks
from omnicx.profiles import service as profiles
from omnicx.profiles.record import iso, rules_from

USER = "ana-berg"
EMAIL = "ana.berg@example.com"
ANON = "ana-browser-7f3c"
ORDER = "ANA-1001"
JACKET = {
    "product_id": "ALP-JKT",
    "sku": "ALP-JKT",
    "name": "Alpine Shell Jacket",
    "category": "jackets",
    "price": 349.0,
    "quantity": 1,
}


async def play(
    db: Database, hooks: Hooks, refs: dict[str, SourceRef], say: Callable[[str], None]
) -> str | None:
    """Play the story; returns Ana's pickup code."""
    now = utcnow()

    async def step(text: str, source: str, *events: dict[str, Any]) -> None:
        stream = Stream()
        for event in events:
            stream.add(source, event)
        await send(db, hooks, refs, stream)
        say(f"  story: {text}")

    def at(minutes_ago: float) -> str:
        return iso(now - timedelta(minutes=minutes_ago))

    say("The story of Ana Berg:")
    await step(
        "Ana looks at the Alpine Shell Jacket on the website, not logged in",
        "website",
        {
            "type": "page",
            "name": "Alpine Shell Jacket",
            "anonymousId": ANON,
            "messageId": "ana:page:1",
            "timestamp": at(185),
            "properties": {"url": "https://shop.example/p/alp-jkt", "title": "Alpine Shell Jacket"},
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": ANON,
            "messageId": "ana:view:1",
            "timestamp": at(184),
            "properties": JACKET,
        },
    )
    await step(
        "she signs in: the anonymous browsing joins her profile",
        "website",
        {
            "type": "identify",
            "anonymousId": ANON,
            "userId": USER,
            "messageId": "ana:identify",
            "timestamp": at(178),
            "traits": {
                "email": EMAIL,
                "first_name": "Ana",
                "last_name": "Berg",
                "city": "Oslo",
                "timezone": "Europe/Oslo",
                "phone": "+4791234567",
                "preferred_store": "oslo-1",
            },
            "context": {"consent": {"email": {"marketing": True}, "push": {"marketing": True}}},
        },
        {
            "type": "track",
            "event": "Product Added to Wishlist",
            "userId": USER,
            "messageId": "ana:wish",
            "timestamp": at(176),
            "properties": JACKET,
        },
        {
            "type": "track",
            "event": "Product Added",
            "userId": USER,
            "messageId": "ana:cart",
            "timestamp": at(175),
            "properties": {**JACKET, "cart_id": "ana-cart"},
        },
    )
    async with db.session() as session:
        profile = await profiles.get_by_external_id(
            session, external_id=f"user_id:{USER}", rules=rules_from(db.settings)
        )
    assert profile is not None
    conversation = await chat(
        db,
        hooks,
        profile.id,
        [
            "Hi! Is the Alpine Shell Jacket waterproof?",
            "Do you have it in size M at the Oslo store?",
            "Can I talk to a person please?",
        ],
        hand_off=True,
    )
    say(f"  story: she asks the website chatbot about the jacket; handed off (#{conversation})")
    await step(
        "she has the app too (a push token on her profile)",
        "ios-app",
        {
            "type": "identify",
            "userId": USER,
            "messageId": "ana:app",
            "timestamp": at(170),
            "context": {"device": {"token": "demo-apns-ana", "type": "ios"}},
        },
    )
    await step(
        f"she reserves the jacket in the app for click-and-collect at Oslo ({ORDER})",
        "ios-app",
        {
            "type": "track",
            "event": "Order Completed",
            "userId": USER,
            "messageId": "ana:order",
            "timestamp": at(20),
            "properties": {
                "order_id": ORDER,
                "total": 314.10,
                "subtotal": 349.0,
                "discount": 34.90,
                "coupon": "COMEBACK10",
                "currency": "EUR",
                "products": [JACKET],
                "cart_id": "ana-cart",
                "fulfillment": "pickup",
                "store_id": "oslo-1",
            },
        },
    )
    pickups = Pickups(db.settings, hooks)

    async def ready(session: AsyncSession) -> str | None:
        for to in ("picking", "ready_for_pickup"):
            pickup = await commerce.pickup_of_order(session, order_id=ORDER)
            if pickup is None or pickup.status != ("placed" if to == "picking" else "picking"):
                return pickup.code if pickup else None
            await pickups.transition(
                session,
                pickup,
                TransitionRequest(to=to, actor="store_associate:Sofie Store"),
                utcnow(),
            )
            await session.flush()
        pickup = await commerce.pickup_of_order(session, order_id=ORDER)
        return pickup.code if pickup else None

    code: str | None = await db.transaction(ready)
    say(f"  story: the Oslo store picks it and marks it ready; her pickup code is {code}")
    return code
