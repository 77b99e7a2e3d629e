"""Demo conversations: website chats with the bot, some handed off to the support queue and
answered by an agent, some still waiting, through the conversations service (the bot answers
for real)."""

from __future__ import annotations

import random

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import Role, Staff
from omnicx.conversations import service as conversations
from omnicx.conversations.router import put_agent, put_canned
from omnicx.conversations.schemas import AgentWrite, CannedWrite
from omnicx.db import Database, utcnow
from omnicx.hooks import Hooks

AGENT = "Aksel Agent"
CANNED = {
    "pickup-hours": "Our stores hold click-and-collect orders for 7 days, open 10:00–20:00 "
    "on weekdays and 10:00–18:00 on Saturdays.",
    "returns": "You can return anything unused within 30 days, in any store or by post.",
    "thanks": "Thank you for reaching out! Is there anything else I can help with?",
}
QUESTIONS = [
    ("Where is my order?", False),
    ("Do you have the Trekking Pants in size 32?", True),
    ("How long do you hold click and collect orders?", False),
    ("Can I return boots I bought online in a store?", True),
    ("My jacket zip broke after two weeks, I want to talk to an agent", True),
    ("Is the Fjord Down Jacket warm enough for -15?", False),
]
ADMIN = Staff(token_id=None, name="demo", role=Role.admin, store_id=None)


async def setup(db: Database) -> None:
    """The support agent and a few canned responses."""
    await put_agent(db, ADMIN, AGENT, AgentWrite(queues=["support"], capacity=20, active=True))
    for name, body in CANNED.items():
        await put_canned(db, ADMIN, name, CannedWrite(body=body))


async def chat(
    db: Database,
    hooks: Hooks,
    profile_id: str,
    lines: list[str],
    *,
    hand_off: bool,
    answer: str | None = None,
) -> int:
    """A chat from the website: her lines (the bot answers each), then optionally a handoff and
    an agent's answer; returns the conversation id."""
    settings = db.settings

    async def work(session: AsyncSession) -> int:
        received = None
        for line in lines:
            received = await conversations.receive(
                session,
                settings,
                hooks,
                profile_id=profile_id,
                channel="chat",
                body=line,
                now=utcnow(),
                verified=True,
            )
        assert received is not None
        c = received.conversation
        if hand_off and c.status == "bot":
            await conversations.hand_off(
                session,
                settings,
                hooks,
                conversation=c,
                reason="customer asked for a person",
                now=utcnow(),
            )
        if answer is not None:
            staff = Staff(token_id=None, name=AGENT, role=Role.agent, store_id=None)
            await conversations.assign(
                session, settings, hooks, conversation=c, agent=AGENT, now=utcnow()
            )
            await conversations.post_staff_message(
                session,
                settings,
                hooks,
                conversation=c,
                staff=staff,
                body=answer,
                internal=False,
                now=utcnow(),
            )
        return int(c.id)

    cid: int = await db.transaction(work)
    return cid


async def seed(db: Database, hooks: Hooks, profile_ids: list[str], rng: random.Random) -> int:
    """A chat for some of the customers; returns how many conversations were started."""
    started = 0
    for profile_id in profile_ids:
        question, needs_person = rng.choice(QUESTIONS)
        answered = needs_person and rng.random() < 0.5
        await chat(
            db,
            hooks,
            profile_id,
            [question],
            hand_off=needs_person,
            answer=CANNED["thanks"] if answered else None,
        )
        started += 1
    return started
