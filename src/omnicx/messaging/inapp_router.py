"""The app client's API: its inbox, read state, and live delivery over WebSocket or SSE.

Authentication (customers have no staff token): the app sends its source's write key, the
signed-in user's id and ``user_hash = hex(HMAC-SHA256(OMNICX_INAPP_SECRET, user_id))``, which the
brand's backend computes and hands to its app at sign-in (never ship the secret in the app). As
headers ``X-OmniCX-Write-Key``, ``X-OmniCX-User-Id``, ``X-OmniCX-User-Hash``, or as the query
parameters ``write_key``, ``user_id``, ``user_hash`` where a browser cannot set headers
(``WebSocket``, ``EventSource``). A user can only ever read and change their own inbox.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import get_source_by_write_key
from omnicx.db import Database, Db, RowId, utcnow
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.messaging import engagement
from omnicx.messaging.providers.inapp import HUB
from omnicx.messaging.schemas import InboxItem, InboxPage, InboxUpdate
from omnicx.messaging.signing import inapp_key, user_hash
from omnicx.profiles import service as profiles
from omnicx.profiles.record import rules_from

router = APIRouter(tags=["in-app client"])
KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class AppUser:
    user_id: str
    profile_id: str | None


async def authenticate(db: Database, params: dict[str, str | None]) -> AppUser:
    write_key, user_id, given = params["write_key"], params["user_id"], params["user_hash"]
    if not write_key or not user_id or not given:
        raise ApiError(401, "unauthenticated", "write key, user id and user hash are required")
    if not hmac.compare_digest(user_hash(inapp_key(db.settings), user_id), given.lower()):
        raise ApiError(401, "unauthenticated", "the user hash does not match the user id")
    async with db.session() as session:
        if await get_source_by_write_key(session, write_key=write_key) is None:
            raise ApiError(401, "unauthenticated", "unknown write key")
        profile = await profiles.get_by_external_id(
            session, external_id=f"user_id:{user_id}", rules=rules_from(db.settings)
        )
    return AppUser(user_id, profile.id if profile else None)


async def app_user(request: Request) -> AppUser:
    h, q = request.headers, request.query_params
    return await authenticate(
        request.app.state.db,
        {
            "write_key": h.get("x-omnicx-write-key") or q.get("write_key"),
            "user_id": h.get("x-omnicx-user-id") or q.get("user_id"),
            "user_hash": h.get("x-omnicx-user-hash") or q.get("user_hash"),
        },
    )


User = Annotated[AppUser, Depends(app_user)]


@router.get("/api/inapp/messages", response_model=InboxPage)
async def list_inbox(
    db: Db, user: User, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> InboxPage:
    """The signed-in user's inbox, newest first, without dismissed cards."""
    if user.profile_id is None:
        return InboxPage(items=[], unread=0)
    async with db.session() as session:
        items, unread = await engagement.inbox(session, profile_id=user.profile_id, limit=limit)
    return InboxPage(items=items, unread=unread)


@router.patch("/api/inapp/messages/{message_id}", response_model=InboxItem)
async def update_inbox_item(
    db: Db, hooks: AppHooks, user: User, message_id: RowId, body: InboxUpdate
) -> InboxItem:
    """Mark a card read, unread or dismissed (read counts as opened)."""
    profile_id = user.profile_id

    async def work(session: AsyncSession) -> InboxItem | None:
        if profile_id is None:
            return None
        message = await engagement.set_inbox_state(
            session,
            hooks,
            profile_id=profile_id,
            message_id=message_id,
            state=body.state,
            now=utcnow(),
        )
        return engagement.inbox_item(message) if message else None

    item = await db.transaction(work)
    if item is None:
        raise ApiError(404, "message_not_found", f"no message {message_id} in this inbox")
    return item


@router.post("/api/inapp/messages/{message_id}/click", response_model=InboxItem)
async def click_inbox_item(db: Db, hooks: AppHooks, user: User, message_id: RowId) -> InboxItem:
    """The user followed the card's link (counts as clicked, and read)."""
    profile_id = user.profile_id

    async def work(session: AsyncSession) -> InboxItem | None:
        if profile_id is None:
            return None
        message = await engagement.set_inbox_state(
            session,
            hooks,
            profile_id=profile_id,
            message_id=message_id,
            state="read",
            now=utcnow(),
        )
        if message is None:
            return None
        await engagement.engage(
            session,
            hooks,
            message_id=message_id,
            status="clicked",
            now=utcnow(),
            url=message.content.get("link") or "",
        )
        return engagement.inbox_item(message)

    item = await db.transaction(work)
    if item is None:
        raise ApiError(404, "message_not_found", f"no message {message_id} in this inbox")
    return item


@router.get("/api/inapp/stream")
async def stream(user: User, request: Request) -> StreamingResponse:
    """Server-sent events: one ``message`` event per new card, as it is sent."""
    profile_id = user.profile_id
    if profile_id is None:
        raise ApiError(404, "profile_not_found", "no profile for this user yet")
    queue = HUB.subscribe(profile_id)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    card = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield b"event: message\ndata: " + orjson.dumps(card) + b"\n\n"
        finally:
            HUB.unsubscribe(profile_id, queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.websocket("/api/inapp/ws")
async def websocket(ws: WebSocket) -> None:
    """WebSocket: one JSON card per new message, as it is sent."""
    q = ws.query_params
    try:
        user = await authenticate(
            ws.app.state.db,
            {
                "write_key": q.get("write_key"),
                "user_id": q.get("user_id"),
                "user_hash": q.get("user_hash"),
            },
        )
    except ApiError as exc:
        await ws.close(code=4401, reason=exc.message)
        return
    if user.profile_id is None:
        await ws.close(code=4404, reason="no profile for this user yet")
        return
    await ws.accept()
    queue = HUB.subscribe(user.profile_id)
    receiver = asyncio.create_task(_drain(ws))
    getter: asyncio.Task[dict[str, object]] | None = None
    try:
        while not receiver.done():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                await ws.send_text(orjson.dumps({"type": "message", **getter.result()}).decode())
                getter = None
    except WebSocketDisconnect:
        pass
    finally:
        HUB.unsubscribe(user.profile_id, queue)
        for task in (getter, receiver):
            if task is not None:
                task.cancel()


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        return


def _client_js() -> bytes:
    return resources.files("omnicx.messaging").joinpath("inapp.js").read_bytes()


@router.get("/m/inapp.js", include_in_schema=False)
async def client_js() -> Response:
    """The small JavaScript in-app client (see README)."""
    return Response(
        _client_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300"},
    )
