"""CSAT and NPS from ``Survey Answered`` events, on SQLite and PostgreSQL, through the API."""

from __future__ import annotations

from typing import Any

import httpx

from omnicx.auth.service import Role
from omnicx.db import Database
from tests.conftest import new_token
from tests.helpers import row_counts, send_ok, timeline

WHEN = "2024-03-10T12:00:00Z"


def answer(user: str, survey: str, score: Any, **props: Any) -> dict[str, Any]:
    return {
        "userId": user,
        "event": "Survey Answered",
        "properties": {"survey": survey, "score": score, **props},
        "timestamp": WHEN,
    }


async def analyst(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_token(db, Role.analyst)}"}


RANGE = {"start": "2024-01-01", "end": "2024-07-01"}


async def test_nps_and_csat_by_channel_agent_store_journey_and_period(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    answers = [
        answer("u1", "nps", 10, channel="email", journey_id="j-onboard"),
        answer("u2", "nps", 9, channel="email", journey_id="j-onboard"),
        answer("u3", "nps", 7, channel="sms"),
        answer("u4", "nps", 3, channel="sms", journey_id="j-onboard"),
        answer("u5", "csat", 5, channel="chat", agent="dana"),
        answer("u6", "csat", 4, channel="chat", agent="dana"),
        answer("u7", "csat", 2, channel="chat", agent="erik", store_id="oslo-1"),
    ]
    answers[3]["timestamp"] = "2024-04-02T09:00:00Z"
    for body in answers:
        await send_ok(client, write_key, "track", **body)
    headers = await analyst(db)

    nps = (await client.get("/api/analytics/surveys/nps", params=RANGE, headers=headers)).json()
    # 2 promoters, 1 passive, 1 detractor of 4: (2 - 1) / 4 = 25
    assert nps["summary"]["score"] == 25.0 and nps["summary"]["responses"] == 4
    by_channel = (
        await client.get(
            "/api/analytics/surveys/nps", params={**RANGE, "by": "channel"}, headers=headers
        )
    ).json()["rows"]
    assert [(r["group"], r["score"]) for r in by_channel] == [("email", 100.0), ("sms", -50.0)]
    by_journey = (
        await client.get(
            "/api/analytics/surveys/nps", params={**RANGE, "by": "journey"}, headers=headers
        )
    ).json()["rows"]
    assert [(r["group"], r["responses"]) for r in by_journey] == [("j-onboard", 3), (None, 1)]
    by_month = (
        await client.get(
            "/api/analytics/surveys/nps", params={**RANGE, "by": "period"}, headers=headers
        )
    ).json()["rows"]
    assert [(r["group"], r["responses"]) for r in by_month] == [("2024-03", 3), ("2024-04", 1)]

    csat = await client.get(
        "/api/analytics/surveys/csat", params={**RANGE, "by": "agent"}, headers=headers
    )
    body = csat.json()
    assert round(body["summary"]["score"], 2) == 66.67  # 2 of 3 scored 4-5
    assert [(r["group"], r["score"]) for r in body["rows"]] == [("dana", 100.0), ("erik", 0.0)]
    by_store = (
        await client.get(
            "/api/analytics/surveys/csat", params={**RANGE, "by": "store"}, headers=headers
        )
    ).json()["rows"]
    assert [(r["group"], r["responses"]) for r in by_store] == [("oslo-1", 1), (None, 2)]

    # The latest answer is on the profile's computed traits.
    traits = (
        await client.get("/api/analytics/profiles/user_id:u4/traits", headers=headers)
    ).json()["traits"]
    assert traits["nps_last"] == 3 and traits["nps_category"] == "detractor"

    csv = await client.get(
        "/api/analytics/surveys/nps",
        params={**RANGE, "by": "channel", "format": "csv"},
        headers=headers,
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("group,responses,mean,score")
    assert csv.text.splitlines()[1].startswith("email,2,9.5,100.0")


async def test_no_answers_is_no_score_and_all_promoters_is_100(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    headers = await analyst(db)
    empty = (await client.get("/api/analytics/surveys/nps", params=RANGE, headers=headers)).json()
    assert empty["summary"] == {"survey": "nps", "responses": 0, "mean": None, "score": None}
    assert empty["rows"] == []
    for user in ("a", "b", "c"):
        await send_ok(client, write_key, "track", **answer(user, "nps", 9 if user == "a" else 10))
    full = (await client.get("/api/analytics/surveys/nps", params=RANGE, headers=headers)).json()
    assert full["summary"]["score"] == 100.0 and full["summary"]["detractors"] == 0


async def test_invalid_answers_stay_on_the_timeline_but_do_not_count(
    client: httpx.AsyncClient, db: Database, write_key: str, admin_headers: dict[str, str]
) -> None:
    for body in (
        answer("u1", "nps", 11),
        answer("u1", "csat", 0),
        answer("u1", "csat", 4.5),
        answer("u1", "ces", 3),
        answer("u1", "nps", "ten"),
        answer("u1", "nps", True),
    ):
        await send_ok(client, write_key, "track", **body)
    await send_ok(client, write_key, "track", **answer("u1", "nps", "8"))
    headers = await analyst(db)
    nps = (await client.get("/api/analytics/surveys/nps", params=RANGE, headers=headers)).json()
    assert nps["summary"]["responses"] == 1 and nps["summary"]["score"] == 0.0
    csat = (await client.get("/api/analytics/surveys/csat", params=RANGE, headers=headers)).json()
    assert csat["summary"]["responses"] == 0
    assert len(await timeline(client, admin_headers, "user_id:u1")) == 7


async def test_a_replayed_answer_counts_once_and_bad_ranges_are_refused(
    client: httpx.AsyncClient, db: Database, write_key: str
) -> None:
    body = {**answer("u1", "csat", 5), "messageId": "survey-1"}
    await send_ok(client, write_key, "track", **body)
    await send_ok(client, write_key, "track", **body)
    headers = await analyst(db)
    csat = (await client.get("/api/analytics/surveys/csat", params=RANGE, headers=headers)).json()
    assert csat["summary"]["responses"] == 1
    before = await row_counts(db)
    backwards = await client.get(
        "/api/analytics/surveys/csat",
        params={"start": "2024-07-01", "end": "2024-01-01"},
        headers=headers,
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"]["code"] == "invalid_range"
    unknown = await client.get("/api/analytics/surveys/ces", headers=headers)
    assert unknown.status_code == 422
    bad_by = await client.get(
        "/api/analytics/surveys/csat", params={"by": "planet"}, headers=headers
    )
    assert bad_by.status_code == 422 and bad_by.json()["error"]["code"] == "invalid_request"
    assert await row_counts(db) == before
