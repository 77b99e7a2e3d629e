"""Wait for an event with a timeout: the event branch and the timeout branch, and the match
against the trigger's properties (another trial's activation wakes nobody)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from omnicx.db import Database, utcnow
from tests.journeys.factories import drain, journey, messages, runs, stats, template, track

ONBOARDING = {
    "entry": {"event": "Trial Started", "key": "trial_id"},
    "nodes": [
        {
            "id": "activated",
            "type": "wait_for_event",
            "event": "Trial Activated",
            "match": ["trial_id"],
            "timeout": "2d",
            "next": "congrats",
            "timeout_next": "nudge",
        },
        {"id": "nudge", "type": "send", "message": "nudge", "channel": "inapp", "next": None},
        {"id": "congrats", "type": "send", "message": "congrats", "channel": "inapp"},
    ],
}


async def test_the_event_and_the_timeout_take_their_own_branches(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: Database,
    write_key: str,
    admin_headers: dict[str, str],
) -> None:
    hooks = app.state.hooks
    for name in ("nudge", "congrats"):
        await template(client, admin_headers, name)
    await journey(client, admin_headers, "onboarding", ONBOARDING)
    start = utcnow()
    await track(client, write_key, "ana", "Trial Started", start, trial_id="t-ana")
    await track(client, write_key, "bo", "Trial Started", start, trial_id="t-bo")
    await drain(db, hooks, start)
    [ana] = await runs(client, admin_headers, "user_id:ana")
    assert (ana["status"], ana["node"], ana["waiting_for"]) == (
        "waiting",
        "activated",
        "Trial Activated",
    )

    # Bo activates a different trial first: no match. Ana activates hers after a day.
    await track(client, write_key, "bo", "Trial Activated", start, trial_id="t-other")
    await track(
        client, write_key, "ana", "Trial Activated", start + timedelta(days=1), trial_id="t-ana"
    )
    await drain(db, hooks, start + timedelta(days=1))
    [ana] = await runs(client, admin_headers, "user_id:ana")
    [bo] = await runs(client, admin_headers, "user_id:bo")
    assert ana["status"] == "completed"
    assert [(s["node"], s["outcome"]) for s in ana["steps"]] == [
        ("activated", "event"),
        ("congrats", "queued"),
    ]
    assert bo["status"] == "waiting"

    # Two days pass: Bo times out and gets the nudge; Ana's timeout never fires.
    await drain(db, hooks, start + timedelta(days=2, seconds=1))
    [bo] = await runs(client, admin_headers, "user_id:bo")
    assert [(s["node"], s["outcome"]) for s in bo["steps"]] == [
        ("activated", "timeout"),
        ("nudge", "queued"),
    ]
    assert bo["status"] == "completed"
    ana_id, bo_id = (
        await _pid(client, admin_headers, "ana"),
        await _pid(client, admin_headers, "bo"),
    )
    assert sorted((m.profile_id, m.template) for m in await messages(db)) == sorted(
        [(ana_id, "congrats"), (bo_id, "nudge")]
    )

    report = await stats(client, admin_headers, "onboarding")
    assert report["nodes"]["activated"]["outcomes"] == {"event": 1, "timeout": 1}
    assert report["totals"]["completed"] == 2


async def _pid(client: httpx.AsyncClient, headers: dict[str, str], user: str) -> str:
    response = await client.get(f"/api/profiles/user_id:{user}", headers=headers)
    pid: str = response.json()["id"]
    return pid
