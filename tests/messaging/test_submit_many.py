"""``submit_many`` decides every message as ``submit`` does: two twin sets of customers, one sent
to one message at a time, the other in one batch, end with the same outcomes (consent,
suppression, caps counting the batch's own messages, quiet hours, rendering, errors); and a
batch sent again returns the same messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.messaging.batch import submit_many
from omnicx.messaging.models import Message
from omnicx.messaging.policies import suppress
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.service import SendRequest, Submitted, submit
from omnicx.settings import Settings
from tests.messaging.factories import customer, setup_brand_and_templates

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo: quiet there
PEOPLE: dict[str, dict[str, Any]] = {
    "emailable": {"email": "{u}@shop.example", "consent": {"email": True}},
    "no-consent": {"email": "{u}@shop.example"},
    "suppressed": {"email": "{u}@shop.example", "consent": {"email": True, "inapp": True}},
    "capped": {"consent": {"inapp": True}},
    "night": {"timezone": "Asia/Tokyo", "consent": {"inapp": True}},
}
SENDS: list[tuple[str, str, Any]] = [  # (person, template, channel)
    ("emailable", "spring-sale", "auto"),
    ("no-consent", "spring-sale", "email"),
    ("no-consent", "receipt", "inapp"),  # transactional: no consent needed
    ("suppressed", "spring-sale", ["email", "inapp"]),  # the chain falls back
    ("capped", "spring-sale", "inapp"),
    ("capped", "spring-sale", "inapp"),  # the cap counts the first, in the same batch
    ("night", "spring-sale", "inapp"),  # deferred to 08:00 Tokyo
    ("emailable", "no-such-template", "email"),
]


def outcome(result: Submitted | ApiError) -> tuple[Any, ...]:
    if isinstance(result, ApiError):
        return ("error", result.code)
    m = result.message
    title = m.content.get("subject") or m.content.get("title")
    return (m.status, m.channel, m.reason, m.choice_reason, m.send_at, m.content.get("type"), title)


async def test_a_batch_decides_each_message_as_one_by_one_and_retries_return_the_same(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    app: FastAPI,
    db: Database,
    settings: Settings,
) -> None:
    await setup_brand_and_templates(client, admin_headers)
    settings = settings.model_copy(
        update={
            "messaging_caps": {"all": {"day": 1}},
            "messaging_quiet_hours": "21:00-08:00",
            "messaging_quiet_hours_channels": ["inapp"],
        }
    )
    hooks, available = app.state.hooks, configured(settings)
    for twin in ("one", "many"):
        for person, spec in PEOPLE.items():
            user = f"{twin}-{person}"
            traits = {k: v.format(u=user) for k, v in spec.items() if k != "consent"}
            await customer(client, write_key, user, consent=spec.get("consent"), **traits)

    async def block(session: AsyncSession) -> None:
        for twin in ("one", "many"):
            address = f"{twin}-suppressed@shop.example"
            await suppress(session, settings, kind="email", value=address, reason="bounce", now=NOW)

    await db.transaction(block)

    def request(twin: str, i: int, key: str | None = None) -> SendRequest:
        person, template, channel = SENDS[i]
        return SendRequest(
            to=f"user_id:{twin}-{person}",
            message=template,
            channel=channel,
            data={"product": "tent", "order_id": "O-1"},
            idempotency_key=key or f"{twin}:{i}",
        )

    async def one_by_one(session: AsyncSession) -> list[Submitted | ApiError]:
        out: list[Submitted | ApiError] = []
        for i in range(len(SENDS)):
            try:
                out.append(
                    await submit(
                        session,
                        settings,
                        hooks,
                        request=request("one", i),
                        available=available,
                        now=NOW,
                    )
                )
            except ApiError as exc:
                out.append(exc)
        return out

    def many(requests: list[SendRequest]) -> Any:
        async def work(session: AsyncSession) -> list[tuple[Any, ...]]:
            results = await submit_many(
                session, settings, hooks, requests=requests, available=available, now=NOW
            )
            await session.flush()
            return [(*outcome(r), _id(r), _created(r)) for r in results]

        return work

    singles = [outcome(r) for r in await db.transaction(one_by_one)]
    batch = await db.transaction(many([request("many", i) for i in range(len(SENDS))]))
    assert [b[:-2] for b in batch] == singles
    assert [s[0] for s in singles] == [
        "queued",
        "skipped",
        "queued",
        "queued",
        "queued",
        "skipped",
        "queued",
        "error",
    ]
    assert singles[5][2] == "frequency cap (all: 1 per day)"
    assert singles[6][4] == datetime(2026, 1, 10, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
    assert singles[3][1] == "inapp" and "address suppressed" in singles[3][3]
    assert all(b[-1] for b in batch[:-1])

    # Sent again (a retry after a crash), with one key twice: the same messages, none new.
    again = [request("many", i) for i in range(len(SENDS))] + [request("many", 0, key="many:0")]
    retried = await db.transaction(many(again))
    assert [r[-2] for r in retried] == [b[-2] for b in batch] + [batch[0][-2]]
    assert not any(r[-1] for r in retried)
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(Message))).scalar_one()
    assert count == 2 * (len(SENDS) - 1)
    events = (
        await client.get("/api/profiles/user_id:many-capped/events", headers=admin_headers)
    ).json()["items"]
    assert sorted(e["event"] for e in events if (e["event"] or "").startswith("Message")) == [
        "Message Queued",
        "Message Skipped",
    ]


def _id(result: Submitted | ApiError) -> int | None:
    return result.message.id if isinstance(result, Submitted) else None


def _created(result: Submitted | ApiError) -> bool | None:
    return result.created if isinstance(result, Submitted) else None
