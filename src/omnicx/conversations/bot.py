"""The bot: FAQ answers, order and pickup status, collecting what an agent needs, handing off.

It reads each customer message of a conversation in the ``bot`` state and decides one
:class:`Turn`: an answer, a question, or a handoff (with its reason). After a handoff it is
silent: the conversation is no longer in the ``bot`` state.

- FAQ: entries from the API (``conversation_faq``) and from ``OMNICX_CONVERSATIONS_FAQ_FILE``
  (YAML or JSON: a list of ``{id, questions: [...], answer, topic}``). Matching uses the standard
  library's :mod:`difflib` (no dependency; an FAQ holds tens to hundreds of entries, so speed is
  no concern): a question's score is the best of the whole-text similarity ratio and the share
  of its content words found in the message, each word matched with a typo tolerance
  (``get_close_matches``, cutoff 0.8). The best entry answers when its score reaches
  ``OMNICX_CONVERSATIONS_FAQ_THRESHOLD``.
- Orders: a message about an order or a pickup is answered from Commerce, and only for a
  *verified* customer (a widget or app session carrying the user hash, or an SMS from the number
  on the profile); an order number that is not hers is answered as unknown, so nothing leaks.
  Unverified customers are asked to sign in, and the number is kept for the agent.
- Collected: ``order_id`` (an order number seen in the thread), ``topic`` (the last FAQ topic or
  intent), ``email`` when the customer types one.
- Handoff: when asked (``OMNICX_CONVERSATIONS_HANDOFF_KEYWORDS``), when unsure (that many
  unanswered messages in a row: ``OMNICX_CONVERSATIONS_BOT_MISSES``), or on a rule (an FAQ entry
  whose topic is in ``OMNICX_CONVERSATIONS_HANDOFF_TOPICS`` answers and then hands off).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.commerce import service as commerce
from omnicx.commerce.schemas import OrderRead
from omnicx.conversations.models import FaqEntry
from omnicx.settings import Settings

log = logging.getLogger(__name__)
WORD = re.compile(r"[a-z0-9]+")
ORDER_NUMBER = re.compile(r"\b(?:#\s?)?([A-Za-z]{0,4}-?\d{3,12})\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
ORDER_WORDS = {"order", "orders", "pickup", "collect", "delivery", "package", "parcel", "ship"}
STOPWORDS = set(
    "a an the i me my we our you your is are was were be do does did can could would should "
    "to of in on at for with and or it this that what when where how which who why please hi "
    "hello hey there thanks thank".split()
)


@dataclass(frozen=True)
class Faq:
    id: str
    questions: list[str]
    answer: str
    topic: str | None


@dataclass
class Turn:
    """What the bot does with one customer message."""

    reply: str | None = None
    handoff: str | None = None  # the reason, when it hands off
    answered: bool = False
    collected: dict[str, Any] = field(default_factory=dict)
    topic: str | None = None


def words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def score(message: str, question: str) -> float:
    """How well ``message`` asks ``question`` (0-1)."""
    ratio = difflib.SequenceMatcher(None, message.lower(), question.lower()).ratio()
    wanted, have = words(question), words(message)
    if not wanted:
        return ratio
    found = sum(1 for w in wanted if difflib.get_close_matches(w, have, n=1, cutoff=0.8))
    return max(ratio, found / len(wanted))


def best_faq(message: str, entries: list[Faq], threshold: float) -> Faq | None:
    best: tuple[float, Faq] | None = None
    for entry in entries:
        s = max((score(message, q) for q in entry.questions), default=0.0)
        if best is None or s > best[0]:
            best = (s, entry)
    return best[1] if best is not None and best[0] >= threshold else None


_FILE_CACHE: dict[str, tuple[float, list[Faq]]] = {}


def faq_from_file(path: str) -> list[Faq]:
    """The entries of an FAQ file, re-read when it changes."""
    p = Path(path)
    mtime = p.stat().st_mtime
    cached = _FILE_CACHE.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    text = p.read_text(encoding="utf-8")
    data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("faq", [])
    entries = [
        Faq(
            id=str(item.get("id") or i),
            questions=[str(q) for q in item.get("questions") or [item.get("question", "")]],
            answer=str(item["answer"]),
            topic=item.get("topic"),
        )
        for i, item in enumerate(data or [])
        if isinstance(item, dict) and item.get("answer")
    ]
    _FILE_CACHE[path] = (mtime, entries)
    return entries


async def load_faq(session: AsyncSession, settings: Settings) -> list[Faq]:
    rows = (await session.execute(select(FaqEntry).order_by(FaqEntry.id))).scalars()
    entries = [Faq(r.id, list(r.questions), r.answer, r.topic) for r in rows]
    if settings.conversations_faq_file:
        try:
            entries += faq_from_file(settings.conversations_faq_file)
        except (OSError, ValueError, KeyError, yaml.YAMLError):
            # A broken file must not take the chat down: the API's entries still answer.
            log.exception("cannot read the FAQ file %s", settings.conversations_faq_file)
    return entries


def describe(order: OrderRead) -> str:
    text = f"Order {order.id} is {order.status.replace('_', ' ')}"
    pickup = order.pickup
    if pickup is not None:
        text += f"; pickup at store {pickup.store_id} is {pickup.status.replace('_', ' ')}"
        if pickup.status == "ready" and pickup.expires_at is not None:
            text += f", held until {pickup.expires_at:%d %b %H:%M} UTC"
    return text + "."


async def order_answer(
    session: AsyncSession, settings: Settings, *, profile_id: str, wanted: str | None
) -> str:
    secret = settings.secret_key.get_secret_value()
    orders = await commerce.list_orders(session, profile_id=profile_id, limit=20, secret=secret)
    if wanted is not None:
        mine = [o for o in orders if o.id.lower() == wanted.lower()]
        if not mine:
            return (
                f"I can't find an order {wanted} on your account. An agent can look into it "
                "if you type 'agent'."
            )
        return describe(mine[0])
    if not orders:
        return "I don't see any orders on your account yet."
    return describe(orders[0])


async def respond(
    session: AsyncSession,
    settings: Settings,
    *,
    profile_id: str,
    text: str,
    verified: bool,
    collected: dict[str, Any],
    misses: int,
) -> Turn:
    """The bot's turn on one customer message. ``misses``: unanswered messages before it."""
    turn = Turn()
    lowered = words(text)
    number = next((m for m in ORDER_NUMBER.findall(text) if any(c.isdigit() for c in m)), None)
    if number is not None:
        turn.collected["order_id"] = number
    email = EMAIL.search(text)
    if email is not None:
        turn.collected["email"] = email.group(0)
    keywords = {k.lower() for k in settings.conversations_handoff_keywords}
    if keywords & set(WORD.findall(text.lower())):
        turn.handoff = "asked for an agent"
        return turn
    faq = best_faq(text, await load_faq(session, settings), settings.conversations_faq_threshold)
    # A clear FAQ match wins over a passing mention of pickups; an order number or the word
    # "order" means her own order.
    explicit = number is not None or bool({"order", "orders"} & set(lowered))
    about_orders = explicit or (faq is None and bool(ORDER_WORDS & set(lowered)))
    if about_orders:
        turn.topic = "order status"
        turn.collected["topic"] = "order status"
        if verified:
            wanted = number or collected.get("order_id")
            turn.reply = await order_answer(session, settings, profile_id=profile_id, wanted=wanted)
        else:
            turn.reply = (
                "Please sign in so I can look up your orders, or type 'agent' and a person "
                "will help."
            )
        turn.answered = True
        return turn
    if faq is not None:
        turn.reply, turn.answered, turn.topic = faq.answer, True, faq.topic
        if faq.topic:
            turn.collected["topic"] = faq.topic
            if faq.topic in settings.conversations_handoff_topics:
                turn.handoff = f"topic {faq.topic}"
        return turn
    if misses + 1 >= settings.conversations_bot_misses:
        turn.handoff = "the bot could not answer"
        return turn
    turn.reply = (
        "Sorry, I didn't get that. Could you rephrase? You can also type 'agent' to talk to a "
        "person."
    )
    return turn
