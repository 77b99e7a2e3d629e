"""Every pickup status × every target: legal moves succeed, illegal ones are a 409."""

from __future__ import annotations

import httpx

from omnicx.commerce.pickups import LEGAL
from tests.commerce.factories import move, put_store, send_batch, shopper_journey

PATHS = {
    "placed": [],
    "picking": ["picking"],
    "ready_for_pickup": ["picking", "ready_for_pickup"],
    "partially_collected": ["picking", "ready_for_pickup", "partially_collected"],
    "collected": ["picking", "ready_for_pickup", "collected"],
    "expired": ["picking", "ready_for_pickup", "expired"],
    "cancelled": ["cancelled"],
}


async def _reach(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, path: list[str]
) -> str | None:
    code = None
    for to in path:
        extra: dict[str, object] = {}
        if to in ("collected", "partially_collected"):
            extra = {"code": code, "items": [{"product_id": "ALP-JKT", "quantity": 1}]}
        response = await move(client, headers, order_id, to, **extra)
        assert response.status_code == 200, (order_id, to, response.text)
        code = response.json()["pickup"]["code"] or code
    return code


async def test_transition_matrix(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await put_store(client, admin_headers, "oslo-1")
    assert set(PATHS) == set(LEGAL)
    n = 0
    for status, path in PATHS.items():
        for target in LEGAL:
            n += 1
            order_id = f"M-{n}"
            await send_batch(
                client, write_key, shopper_journey(f"anon-m{n}", f"user-m{n}", order_id, "oslo-1")
            )
            code = await _reach(client, admin_headers, order_id, path)
            extra: dict[str, object] = {}
            if target in ("collected", "partially_collected"):
                extra = {
                    "code": code or "XXXXXX",
                    "items": [{"product_id": "WOOL-BN", "quantity": 1}],
                }
            response = await move(client, admin_headers, order_id, target, **extra)
            if target in LEGAL[status]:
                assert response.status_code == 200, (status, target, response.text)
            else:
                assert response.status_code == 409, (status, target, response.text)
                error = response.json()["error"]
                assert error["code"] == "illegal_transition"
                assert error["allowed"] == list(LEGAL[status])
                after = (await client.get(f"/api/orders/{order_id}", headers=admin_headers)).json()
                assert after["pickup"]["status"] == status  # nothing changed
                assert len(after["pickup"]["transitions"]) == len(path)
    assert n == 49


async def test_unknown_status_and_non_pickup_orders(
    client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]
) -> None:
    await send_batch(
        client,
        write_key,
        [
            {
                "type": "track",
                "userId": "d",
                "event": "Order Completed",
                "messageId": "d1",
                "properties": {"order_id": "D-1", "total": 10},
            }
        ],
    )
    response = await move(client, admin_headers, "D-1", "picking")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_click_and_collect"
    response = await move(client, admin_headers, "D-1", "teleported")
    assert response.status_code == 422
    response = await move(client, admin_headers, "NOPE", "picking")
    assert response.status_code == 404
