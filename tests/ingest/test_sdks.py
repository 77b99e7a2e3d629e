"""The unmodified Segment and RudderStack Python SDKs, pointed at a real OmniCX server.

Each SDK runs in both of its modes: the default background thread that batches and is drained
with ``flush()``, and ``sync_mode`` (one blocking request per call). A visitor browses
anonymously, logs in (identify with the same anonymous id), then acts as the known user; the
profile API must then show one person under every identifier, with the anonymous history.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import rudderstack.analytics
import rudderstack.analytics.request
import segment.analytics
import segment.analytics.request
from sqlalchemy import func, select

from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.profiles.models import Event
from tests.conftest import SECRET, new_token, new_write_key
from tests.live_server import LiveServer

SDKS = ["segment", "rudderstack"]
MODES = ["threaded", "sync"]


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    """One live server per backend; each test's ``db`` fixture empties the tables first."""
    with LiveServer(database_url, secret_key=SECRET) as live:
        yield live
    # Both SDKs post through a module-level requests.Session; drop its pooled sockets.
    segment.analytics.request._session.close()
    rudderstack.analytics.request._session.close()


class SdkClient:
    """One SDK client, failing the test on any upload error the SDK reports."""

    def __init__(self, sdk: str, mode: str, write_key: str, host: str) -> None:
        self.sdk = sdk
        self.sync = mode == "sync"
        self.errors: list[tuple[BaseException, list[Any]]] = []
        options: dict[str, Any] = {
            "host": host,
            "sync_mode": self.sync,
            "on_error": self._on_error,
            "max_retries": 1,
            "timeout": 10,
            "upload_interval": 0.1,
        }
        module: Any = segment.analytics if sdk == "segment" else rudderstack.analytics
        self.client: Any = module.Client(write_key, **options)

    def _on_error(self, error: BaseException, batch: list[Any]) -> None:
        self.errors.append((error, batch))

    def call(self, method: str, **kwargs: Any) -> str:
        """Send one call; returns the messageId the SDK gave it."""
        queued, message = getattr(self.client, method)(**kwargs)
        assert queued, f"{self.sdk} refused to queue {method}: {message}"
        message_id: str = message["messageId"]
        return message_id

    def flush(self) -> None:
        if not self.sync:
            self.client.flush()
        assert not self.errors, f"{self.sdk} reported upload errors: {self.errors!r}"

    def shutdown(self) -> None:
        if not self.sync:  # sync mode starts no consumer thread (and join() would fail)
            self.client.shutdown()


@pytest.fixture(params=SDKS)
def sdk(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def _get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await api.get(path, params=params)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


async def test_sdk_anonymous_then_identified(
    server: LiveServer, db: Database, sdk: str, mode: str
) -> None:
    write_key = await new_write_key(db)
    token = await new_token(db, Role.admin)
    run = uuid.uuid4().hex[:8]
    anon, user = f"anon-{run}", f"user-{run}"
    email = f"Ada.{run}@Example.com"  # as typed; the identifier is the lower-cased form
    # Explicit event times one second apart make the expected timeline order unambiguous.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    at = [t0 + timedelta(seconds=i) for i in range(4)]
    page_props = {"path": "/jackets/alpine", "title": "Alpine jacket", "referrer": "search"}
    viewed_props: dict[str, Any] = {
        "product_id": "alpine-jacket",
        "price": 129.5,
        "currency": "EUR",
        "tags": ["outdoor", "winter"],
        "variant": {"size": "M", "colour": "red"},
        "in_stock": True,
    }
    traits = {"email": email, "name": "Ada Lovelace", "plan": "pro", "age": 36}
    order_props: dict[str, Any] = {
        "order_id": f"o-{run}",
        "total": 116.55,
        "products": [{"product_id": "alpine-jacket", "quantity": 1}],
    }
    order_mid = f"order-{run}"

    sdk_client = SdkClient(sdk, mode, write_key, server.url)
    try:
        page_mid = sdk_client.call(
            "page",
            anonymous_id=anon,
            category="Products",
            name="Alpine Jacket",
            properties=page_props,
            timestamp=at[0],
        )
        viewed_mid = sdk_client.call(
            "track",
            anonymous_id=anon,
            event="Product Viewed",
            properties=viewed_props,
            timestamp=at[1],
        )
        identify_mid = sdk_client.call(
            "identify", user_id=user, anonymous_id=anon, traits=traits, timestamp=at[2]
        )
        sent_order_mid = sdk_client.call(
            "track",
            user_id=user,
            event="Order Completed",
            properties=order_props,
            timestamp=at[3],
            message_id=order_mid,
        )
        sdk_client.flush()
        # The same messageId again (an SDK retry after a lost response): stored once.
        sdk_client.call(
            "track",
            user_id=user,
            event="Order Completed",
            properties=order_props,
            timestamp=at[3],
            message_id=order_mid,
        )
        sdk_client.flush()
    finally:
        sdk_client.shutdown()
    assert sent_order_mid == order_mid

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as api:
        by_user = await _get(api, f"/api/profiles/user_id:{user}")
        by_email = await _get(api, f"/api/profiles/email:{email.lower()}")
        by_anon = await _get(api, f"/api/profiles/anonymous_id:{anon}")
        items = (await _get(api, f"/api/profiles/user_id:{user}/events", limit=50))["items"]
        orders = await _get(
            api, f"/api/profiles/email:{email}/events", type="track", event="Order Completed"
        )

    assert by_user["id"] == by_email["id"] == by_anon["id"], (by_user, by_email, by_anon)
    for key, value in traits.items():
        assert by_user["traits"].get(key) == value, (key, by_user["traits"])
    identities = {(i["type"], i["value"]) for i in by_user["identities"]}
    assert {("user_id", user), ("anonymous_id", anon), ("email", email.lower())} <= identities

    # Newest first; the anonymous page view and product view are in the merged timeline.
    assert [(e["message_id"], e["type"], e["event"]) for e in items] == [
        (order_mid, "track", "Order Completed"),
        (identify_mid, "identify", None),
        (viewed_mid, "track", "Product Viewed"),
        (page_mid, "page", "Alpine Jacket"),
    ]
    by_mid = {e["message_id"]: e for e in items}
    assert by_mid[viewed_mid]["properties"] == viewed_props
    assert by_mid[order_mid]["properties"] == order_props
    page = by_mid[page_mid]["properties"]
    assert page_props.items() <= page.items(), page
    assert {e["source"] for e in items} == {"web"}
    for e, when in zip(items, reversed(at), strict=True):
        assert datetime.fromisoformat(e["timestamp"]) == when, (e["message_id"], e["timestamp"])

    assert [e["message_id"] for e in orders["items"]] == [order_mid]
    async with db.session() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Event).where(Event.message_id == order_mid)
        )
    assert stored == 1
