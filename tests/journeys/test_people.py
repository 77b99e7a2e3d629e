"""Runs follow the person: a merge moves them (and what they send) to the surviving profile;
erasure removes them, their steps and their timers."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from omnicx import timers
from omnicx.db import Database, utcnow
from omnicx.journeys.models import JourneyRun, JourneyStep
from tests.helpers import send_ok
from tests.journeys.factories import drain, journey, messages, runs, template
from tests.journeys.test_control import remind


async def test_merge_moves_runs_and_erasure_removes_them(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    h, hooks = admin_headers, app.state.hooks
    await template(client, h, "remind")
    await journey(client, h, "quotes", remind())
    t0 = utcnow()
    await send_ok(client, write_key, "identify", userId="zoe", traits={"first_name": "Zoe"})
    await send_ok(
        client,
        write_key,
        "track",
        anonymousId="anon-1",
        event="Quote Requested",
        timestamp=t0.isoformat(),
    )
    await drain(db, hooks, t0)
    [anonymous] = await runs(client, h, "anonymous_id:anon-1")
    # She logs in: the visitor's profile is merged with hers; the run comes along.
    await send_ok(client, write_key, "identify", userId="zoe", anonymousId="anon-1")
    [run] = await runs(client, h, "user_id:zoe")
    assert (run["id"], run["status"]) == (anonymous["id"], "waiting")
    await drain(db, hooks, t0 + timedelta(hours=1, seconds=1))
    zoe = (await client.get("/api/profiles/user_id:zoe", headers=h)).json()
    assert [(m.profile_id, m.template) for m in await messages(db)] == [(zoe["id"], "remind")]

    # A second request puts her in the journey again; then she is erased.
    await send_ok(
        client,
        write_key,
        "track",
        userId="zoe",
        event="Quote Requested",
        timestamp=(t0 + timedelta(hours=2)).isoformat(),
    )
    await drain(db, hooks, t0 + timedelta(hours=2))
    assert len(await runs(client, h, "user_id:zoe")) == 2
    erased = await client.delete("/api/profiles/user_id:zoe", headers=h)
    assert erased.status_code == 200, erased.text
    async with db.session() as session:
        assert (await session.execute(select(JourneyRun))).first() is None
        assert (await session.execute(select(JourneyStep))).first() is None
        left = (
            await session.execute(
                select(timers.Timer.key).where(timers.Timer.kind.like("journey.%"))
            )
        ).all()
    assert left == []
