"""The worker's pass: journey timers go to the engine's pump (in batches), not through
``run_due`` one by one; a batch that fails is handed to ``run_due``, which runs the good timers
and records the error on the bad one."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from omnicx import timers, worker
from omnicx.db import Database, utcnow
from omnicx.journeys.projector import ENTER
from omnicx.timers import Timer
from tests.journeys.factories import journey, runs, template, track

WELCOME = {
    "entry": {"event": "Signed Up"},
    "nodes": [
        {"id": "pause", "type": "wait", "duration": "1h", "next": "hello"},
        {"id": "hello", "type": "send", "message": "hello", "channel": "inapp"},
    ],
}


async def due_journey_timers(db: Database) -> list[Timer]:
    async with db.session() as session:
        stmt = select(Timer).where(Timer.kind == ENTER).order_by(Timer.key)
        return list((await session.execute(stmt)).scalars())


async def test_the_worker_pass_pumps_journey_timers_and_survives_a_bad_one(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    hooks = app.state.hooks
    assert ENTER in hooks.pumped
    await template(client, admin_headers, "hello")
    await journey(client, admin_headers, "welcome", WELCOME)
    for user in ("ana", "bo"):
        await track(client, write_key, user, "Signed Up", utcnow())
    assert len(await due_journey_timers(db)) == 2

    # run_due as the worker calls it leaves them to the pump.
    assert await timers.run_due(db, hooks, now=utcnow(), exclude=hooks.pumped) == 0
    assert len(await due_journey_timers(db)) == 2

    # A timer the engine cannot handle joins them: the batch fails, run_due goes one by one.
    async with db.session() as session, session.begin():
        await timers.schedule(
            session, kind=ENTER, key=f"{ENTER}:broken", due_at=utcnow(), payload={}
        )
    assert await worker.run_once(db, hooks) >= 3
    for user in ("ana", "bo"):
        [run] = await runs(client, admin_headers, f"user_id:{user}")
        assert (run["status"], run["node"]) == ("waiting", "pause")
    [broken] = await due_journey_timers(db)
    assert broken.key == f"{ENTER}:broken"
    assert broken.attempts == 1 and broken.last_error and "KeyError" in broken.last_error
