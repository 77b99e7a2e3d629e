import httpx


async def test_track_then_read(client: httpx.AsyncClient, write_key: str, admin_headers: dict[str, str]) -> None:
    r = await client.post("/v1/track", json={"anonymousId": "a1", "event": "Viewed", "messageId": "m1"}, auth=(write_key, ""))
    assert r.status_code == 200, r.text
    r = await client.get("/api/profiles/anonymous_id:a1/events", headers=admin_headers)
    assert [e["event"] for e in r.json()["items"]] == ["Viewed"]
