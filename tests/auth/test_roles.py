"""Every staff route × every role: allowed roles get past auth, the others get a 403; no token,
a revoked token and the token of a deleted staff user get a 401 everywhere.

The roles come from the routes themselves (``require(...)`` keeps them), read from the app as
served (every router it mounts); this table only says how to call each route, and a route
missing from it fails the test, so none can be forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from omnicx.app import create_app
from omnicx.auth import users
from omnicx.auth.deps import require
from omnicx.auth.models import ApiToken
from omnicx.auth.service import Role, create_token, hash_secret
from omnicx.db import Database, utcnow
from omnicx.settings import Settings
from tests.conftest import new_token

CALLS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/profiles"): {"url": "/api/profiles?q=someone"},
    ("GET", "/api/profiles/{external_id}"): {"url": "/api/profiles/user_id:someone"},
    ("GET", "/api/profiles/{external_id}/events"): {"url": "/api/profiles/user_id:someone/events"},
    ("PUT", "/api/profiles/{external_id}/consent"): {
        "url": "/api/profiles/user_id:someone/consent",
        "json": {"consents": [{"channel": "email", "status": "granted"}]},
    },
    ("GET", "/api/profiles/{external_id}/export"): {"url": "/api/profiles/user_id:someone/export"},
    ("DELETE", "/api/profiles/{external_id}"): {"url": "/api/profiles/user_id:someone"},
    ("GET", "/api/profiles/{external_id}/orders"): {"url": "/api/profiles/user_id:x/orders"},
    ("GET", "/api/profiles/{external_id}/cart"): {"url": "/api/profiles/user_id:x/cart"},
    ("GET", "/api/profiles/{external_id}/wishlist"): {"url": "/api/profiles/user_id:x/wishlist"},
    ("GET", "/api/orders/{order_id}"): {"url": "/api/orders/O-404"},
    ("POST", "/api/orders/{order_id}/transitions"): {
        "url": "/api/orders/O-404/transitions",
        "json": {"to": "picking"},
    },
    ("GET", "/api/stores"): {"url": "/api/stores"},
    ("PUT", "/api/stores/{store_id}"): {"url": "/api/stores/oslo-1", "json": {"name": "Oslo"}},
    ("GET", "/api/stores/{store_id}/pickups"): {"url": "/api/stores/oslo-1/pickups"},
    ("GET", "/api/products"): {"url": "/api/products"},
    ("PUT", "/api/products/{product_id}"): {"url": "/api/products/P-1", "json": {"name": "P"}},
    ("GET", "/api/analytics/clv"): {"url": "/api/analytics/clv"},
    ("GET", "/api/analytics/profiles/{external_id}/traits"): {
        "url": "/api/analytics/profiles/user_id:x/traits"
    },
    ("GET", "/api/analytics/churn"): {"url": "/api/analytics/churn"},
    ("GET", "/api/analytics/retention"): {"url": "/api/analytics/retention"},
    ("GET", "/api/analytics/surveys/{survey}"): {"url": "/api/analytics/surveys/nps"},
    ("GET", "/api/analytics/experiments/{experiment_id}"): {"url": "/api/analytics/experiments/e"},
    ("POST", "/api/analytics/abtest"): {
        "url": "/api/analytics/abtest",
        "json": {
            "control": {"exposures": 100, "conversions": 10},
            "treatment": {"exposures": 100, "conversions": 12},
        },
    },
    ("GET", "/api/analytics/attribution"): {"url": "/api/analytics/attribution"},
    ("GET", "/api/analytics/paths"): {"url": "/api/analytics/paths"},
    ("GET", "/api/analytics/journeys/{journey_id}/funnel"): {
        "url": "/api/analytics/journeys/j/funnel"
    },
    ("POST", "/api/messages"): {
        "url": "/api/messages",
        "json": {"to": "user_id:nobody", "message": "welcome", "channel": "email"},
    },
    ("GET", "/api/messages/{message_id}"): {"url": "/api/messages/404"},
    ("GET", "/api/profiles/{external_id}/messages"): {"url": "/api/profiles/user_id:x/messages"},
    ("GET", "/api/templates"): {"url": "/api/templates"},
    ("GET", "/api/templates/{template_ref}"): {"url": "/api/templates/none"},
    ("PUT", "/api/templates/{template_ref}"): {
        "url": "/api/templates/404",
        "json": {"variants": {"sms": {"text": "Hi"}}},
    },
    ("DELETE", "/api/templates/{template_ref}"): {"url": "/api/templates/none"},
    ("POST", "/api/templates/{template_ref}/preview"): {
        "url": "/api/templates/none/preview",
        "json": {"channel": "sms"},
    },
    ("GET", "/api/conversations"): {"url": "/api/conversations?status=queued,assigned"},
    ("POST", "/api/conversations"): {
        "url": "/api/conversations",
        "json": {"to": "user_id:nobody", "body": "Came by the store"},
    },
    ("GET", "/api/conversations/{conversation_id}"): {"url": "/api/conversations/404"},
    ("GET", "/api/conversations/{conversation_id}/messages"): {
        "url": "/api/conversations/404/messages"
    },
    ("POST", "/api/conversations/{conversation_id}/messages"): {
        "url": "/api/conversations/404/messages",
        "json": {"body": "Hello"},
    },
    ("POST", "/api/conversations/{conversation_id}/assign"): {
        "url": "/api/conversations/404/assign",
        "json": {},
    },
    ("POST", "/api/conversations/{conversation_id}/handoff"): {
        "url": "/api/conversations/404/handoff",
        "json": {},
    },
    ("POST", "/api/conversations/{conversation_id}/resolve"): {
        "url": "/api/conversations/404/resolve",
        "json": {},
    },
    ("GET", "/api/profiles/{external_id}/conversations"): {
        "url": "/api/profiles/user_id:x/conversations"
    },
    ("GET", "/api/conversation-agents"): {"url": "/api/conversation-agents"},
    ("PUT", "/api/conversation-agents/{name}"): {
        "url": "/api/conversation-agents/ana",
        "json": {"queues": ["support"], "capacity": 3},
    },
    ("GET", "/api/canned-responses"): {"url": "/api/canned-responses"},
    ("PUT", "/api/canned-responses/{name}"): {
        "url": "/api/canned-responses/hello",
        "json": {"body": "Hi! How can I help?"},
    },
    ("DELETE", "/api/canned-responses/{name}"): {"url": "/api/canned-responses/none"},
    ("GET", "/api/faq"): {"url": "/api/faq"},
    ("PUT", "/api/faq/{faq_id}"): {
        "url": "/api/faq/hours",
        "json": {"questions": ["When are you open?"], "answer": "9 to 5."},
    },
    ("DELETE", "/api/faq/{faq_id}"): {"url": "/api/faq/none"},
    ("GET", "/api/brand"): {"url": "/api/brand"},
    ("PUT", "/api/brand"): {"url": "/api/brand", "json": {"name": "Alpine"}},
    ("POST", "/api/suppressions"): {
        "url": "/api/suppressions",
        "json": {"kind": "email", "value": "gone@example.com", "reason": "complaint"},
    },
    ("GET", "/api/segments"): {"url": "/api/segments"},
    ("POST", "/api/segments"): {
        "url": "/api/segments",
        "json": {"id": "s", "name": "S", "definition": {"trait": "x", "op": "exists"}},
    },
    ("POST", "/api/segments/preview"): {
        "url": "/api/segments/preview",
        "json": {"definition": {"trait": "x", "op": "exists"}},
    },
    ("GET", "/api/segments/{segment_id}"): {"url": "/api/segments/none"},
    ("PUT", "/api/segments/{segment_id}"): {
        "url": "/api/segments/none",
        "json": {"name": "S", "definition": {"trait": "x", "op": "exists"}},
    },
    ("DELETE", "/api/segments/{segment_id}"): {"url": "/api/segments/none"},
    ("GET", "/api/segments/{segment_id}/members"): {"url": "/api/segments/none/members"},
    ("GET", "/api/segments/{segment_id}/members.csv"): {"url": "/api/segments/none/members.csv"},
    ("GET", "/api/profiles/{external_id}/segments"): {"url": "/api/profiles/user_id:x/segments"},
    ("GET", "/api/journeys"): {"url": "/api/journeys"},
    ("POST", "/api/journeys"): {
        "url": "/api/journeys",
        "json": {
            "id": "j",
            "name": "J",
            "definition": {"entry": {"event": "E"}, "nodes": [{"id": "x", "type": "exit"}]},
        },
    },
    ("GET", "/api/journeys/{journey_id}"): {"url": "/api/journeys/none"},
    ("PUT", "/api/journeys/{journey_id}"): {
        "url": "/api/journeys/none",
        "json": {
            "name": "J",
            "definition": {"entry": {"event": "E"}, "nodes": [{"id": "x", "type": "exit"}]},
        },
    },
    ("DELETE", "/api/journeys/{journey_id}"): {"url": "/api/journeys/none"},
    ("POST", "/api/journeys/{journey_id}/publish"): {"url": "/api/journeys/none/publish"},
    ("POST", "/api/journeys/{journey_id}/pause"): {"url": "/api/journeys/none/pause"},
    ("POST", "/api/journeys/{journey_id}/resume"): {"url": "/api/journeys/none/resume"},
    ("POST", "/api/journeys/{journey_id}/stop"): {"url": "/api/journeys/none/stop"},
    ("GET", "/api/journeys/{journey_id}/stats"): {"url": "/api/journeys/none/stats"},
    ("GET", "/api/profiles/{external_id}/journeys"): {"url": "/api/profiles/user_id:x/journeys"},
}


def _flatten(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    flat: list[BaseRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included router
        flat.extend(_flatten(included.routes) if included is not None else [route])
    return flat


def app_routes() -> list[BaseRoute]:
    """The routes of the app as ``omnicx serve`` builds it (no database is opened)."""
    app = create_app(Settings(database_url="sqlite:///unused-by-routes.db", env="test"))
    return _flatten(app.routes)


def staff_routes(
    routes: Sequence[BaseRoute] | None = None,
) -> dict[tuple[str, str], frozenset[Role]]:
    table: dict[tuple[str, str], frozenset[Role]] = {}
    for route in app_routes() if routes is None else routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/api"):
            continue
        if "in-app client" in route.tags:  # customers' app, not staff: tests/messaging/test_inapp
            continue
        roles = [
            dep.call.roles  # type: ignore[union-attr]
            for dep in route.dependant.dependencies
            if hasattr(dep.call, "roles")
        ]
        assert len(roles) == 1, f"{route.path} must declare its roles exactly once"
        for method in route.methods or ():
            table[(method, route.path)] = roles[0]
    return table


def test_every_staff_route_is_in_the_table() -> None:
    assert set(staff_routes()) == set(CALLS)


def test_a_new_route_is_not_forgotten() -> None:
    """The check above fails for a route left out of the table, or one that states no roles."""

    async def brand_new() -> None:
        """A route nobody added to CALLS."""

    bare = APIRouter()
    bare.add_api_route("/api/brand-new", brand_new, methods=["GET"])
    with pytest.raises(AssertionError, match="must declare its roles"):
        staff_routes([*app_routes(), *bare.routes])
    declared = APIRouter(dependencies=[Depends(require(Role.admin))])
    declared.add_api_route("/api/brand-new", brand_new, methods=["GET"])
    routes = staff_routes([*app_routes(), *declared.routes])
    assert set(routes) - set(CALLS) == {("GET", "/api/brand-new")}


def _call(method: str, path: str) -> tuple[str, Any]:
    call = CALLS[(method, path)]
    return call["url"], call.get("json")


@pytest.mark.parametrize("role", list(Role))
async def test_role_matrix(client: httpx.AsyncClient, db: Database, role: Role) -> None:
    headers = {"Authorization": f"Bearer {await new_token(db, role, store_id='oslo-1')}"}
    for (method, path), allowed in staff_routes().items():
        url, body = _call(method, path)
        response = await client.request(method, url, json=body, headers=headers)
        if role in allowed:
            assert response.status_code in (200, 201, 204, 404), (method, path, role, response.text)
        else:
            assert response.status_code == 403, (method, path, role, response.text)
            assert response.json()["error"]["code"] == "forbidden"


async def _refused_everywhere(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in staff_routes():
        url, body = _call(method, path)
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthenticated", (method, path)


async def test_no_token_or_a_bad_one_gets_401_everywhere(client: httpx.AsyncClient) -> None:
    await _refused_everywhere(client, {})
    await _refused_everywhere(client, {"Authorization": "Bearer ocx_not-a-token"})
    await _refused_everywhere(client, {"Authorization": "Basic b2N4Og=="})


async def test_a_revoked_token_gets_401_everywhere(client: httpx.AsyncClient, db: Database) -> None:
    token = await new_token(db, Role.admin)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/stores", headers=headers)).status_code == 200

    async def revoke(session: AsyncSession) -> None:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_secret(token))
            .values(revoked_at=utcnow())
        )

    await db.transaction(revoke)
    await _refused_everywhere(client, headers)


async def test_a_deleted_users_token_gets_401_everywhere(
    client: httpx.AsyncClient, db: Database
) -> None:
    async def make(session: AsyncSession) -> tuple[int, str]:
        user = await users.create(
            session, email="gone@example.com", password="correct horse", role=Role.admin
        )
        _row, token = await create_token(session, name="gone", role=Role.admin, user_id=user.id)
        return user.id, token

    user_id, token = await db.transaction(make)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/stores", headers=headers)).status_code == 200

    async def delete(session: AsyncSession) -> None:
        user = await users.get(session, user_id=user_id)
        assert user is not None
        await users.delete(session, user=user)

    await db.transaction(delete)
    await _refused_everywhere(client, headers)
