"""The two WebSockets: customers' (widget and app) and staff's (the agent inbox).

Customer: ``/c/ws?write_key=…&user_id=…&user_hash=…`` (or ``anonymous_id=…``, or
``thread=<link token>``; ``channel=inapp`` from the app). A refused identity closes with 4401.
The server first sends ``{"type": "ready", "conversation", "messages"}``, then every event of her
thread: ``message`` (never internal notes), ``typing`` (an agent types), ``status``,
``assignment``, ``read``. She sends ``{"type": "message", "body"}``, ``{"type": "typing"}`` and
``{"type": "read", "up_to": <message id>}``; a refused message (too long, flood) answers
``{"type": "error", "code", "message"}`` and the socket stays open. While the socket is open she
counts as online, so replies are shown here instead of going out by push, SMS or email.

Staff: ``/api/conversations/ws?token=<staff token>``. Admins and agents receive the events of
every conversation, internal notes included; store associates send
``{"type": "subscribe", "conversation_id"}`` for each conversation they may see. Staff send
``{"type": "typing", "conversation_id"}`` to show the customer they are typing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import metrics
from omnicx.auth.service import Role, Staff, get_staff_by_token
from omnicx.conversations import customers, live, service
from omnicx.conversations.channels import customer_writes
from omnicx.conversations.customers import WidgetUser
from omnicx.conversations.models import ConversationMessage
from omnicx.db import Database, utcnow
from omnicx.errors import ApiError

router = APIRouter(tags=["conversation channels"])
STAFF_ROLES = (Role.admin, Role.agent, Role.store_associate)
TYPING_EVERY = 2.0


def _gauge(endpoint: str, delta: int) -> None:
    metrics.WEBSOCKETS.labels(endpoint=endpoint).inc(delta)


async def load_message(db: Database, message_id: int) -> dict[str, Any] | None:
    async with db.session() as session:
        row = await session.get(ConversationMessage, message_id)
        return service.message_read(row).model_dump(mode="json") if row is not None else None


async def _pump(
    ws: WebSocket,
    sub: live.Subscriber,
    handle: Callable[[dict[str, Any]], Awaitable[None]],
    tick: Callable[[], Awaitable[None]] | None = None,
    tick_seconds: float = 15.0,
) -> None:
    """Forward the subscriber's events to the socket while handling what the client sends."""

    async def receive() -> None:
        while True:
            text = await ws.receive_text()
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                await _send(ws, {"type": "error", "code": "invalid_json", "message": "not JSON"})
                continue
            if isinstance(data, dict):
                await handle(data)

    async def forward() -> None:
        # Events arrive encoded once per process (the hub), so a fan-out to a thousand
        # sockets costs a thousand sends, not a thousand serialisations.
        while True:
            event = await sub.queue.get()
            text = event.text if isinstance(event, live.LiveEvent) else None
            await ws.send_text(text or orjson.dumps(event).decode())

    async def heartbeat() -> None:
        while tick is not None:
            await asyncio.sleep(tick_seconds)
            await tick()

    parts = (receive, forward, heartbeat) if tick is not None else (receive, forward)
    tasks = [asyncio.create_task(part()) for part in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect):
                task.result()
    finally:
        for task in tasks:
            task.cancel()


async def _send(ws: WebSocket, item: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(item).decode())


@router.websocket("/c/ws")
async def customer_socket(ws: WebSocket) -> None:
    """The customer's live thread (widget or app)."""
    db: Database = ws.app.state.db
    q = ws.query_params
    params = {k: q.get(k) for k in ("write_key", "user_id", "user_hash", "anonymous_id", "thread")}
    channel = "inapp" if q.get("channel") == "inapp" else "web"
    try:
        user = await customers.authenticate(db, params, utcnow())
    except ApiError as exc:
        await ws.close(code=4401, reason=exc.message[:120])
        return
    await ws.accept()
    _gauge("conversation_customer", 1)
    hub = live.hub_for(db)
    hub.loader = load_message
    state: dict[str, Any] = {"user": user, "conversation": None}
    async with db.session() as session:
        c = await _thread_of(session, user)
        rows = (
            await service.messages(session, conversation_id=c.id, include_internal=False)
            if c is not None
            else []
        )
    state["conversation"] = c.id if c is not None else None
    sub = await hub.subscribe(db, [c.id] if c is not None else [], customer=True)
    try:
        await _presence(db, state["conversation"], True)
        await _send(
            ws,
            {
                "type": "ready",
                "conversation": (
                    {"id": c.id, "status": c.status, "assignee": c.assignee} if c else None
                ),
                "messages": [service.message_read(m).model_dump(mode="json") for m in rows],
            },
        )

        async def handle(data: dict[str, Any]) -> None:
            await _customer_says(ws, db, hub, sub, state, channel, data)

        async def tick() -> None:
            await _presence(db, state["conversation"], True)

        await _pump(ws, sub, handle, tick, db.settings.conversations_presence_seconds / 3)
    except WebSocketDisconnect:
        pass
    finally:
        await hub.unsubscribe(sub)
        _gauge("conversation_customer", -1)
        with contextlib.suppress(Exception):  # the socket is gone; presence just lapses later
            await _presence(db, state["conversation"], False)


async def _thread_of(session: AsyncSession, user: WidgetUser) -> Any:
    if user.profile_id is None:
        return None
    c = await service.open_of(session, profile_id=user.profile_id)
    if c is None and user.conversation_id is not None:
        c = await service.get(session, conversation_id=user.conversation_id)
        if c is not None and c.profile_id != user.profile_id:
            c = None
    return c


async def _presence(db: Database, conversation_id: int | None, online: bool) -> None:
    if conversation_id is None:
        return

    async def work(session: AsyncSession) -> None:
        await service.touch_presence(
            session, conversation_id=conversation_id, seen=utcnow() if online else None
        )

    await db.transaction(work)


async def _customer_says(
    ws: WebSocket,
    db: Database,
    hub: live.Hub,
    sub: live.Subscriber,
    state: dict[str, Any],
    channel: str,
    data: dict[str, Any],
) -> None:
    kind = data.get("type")
    cid = state["conversation"]
    if kind == "typing":
        # One typing event per socket per TYPING_EVERY seconds, however fast she types.
        now = asyncio.get_running_loop().time()
        if cid is not None and now - state.get("typed_at", -TYPING_EVERY) >= TYPING_EVERY:
            state["typed_at"] = now
            await live.publish_now(
                db, {"type": "typing", "conversation_id": cid, "author": "customer"}
            )
        return
    if kind == "read":
        up_to = data.get("up_to")
        if cid is None or not isinstance(up_to, int):
            return

        async def mark(session: AsyncSession) -> None:
            c = await service.get(session, conversation_id=cid)
            if c is not None:
                await service.mark_read(
                    session, conversation=c, up_to=up_to, reader="customer", now=utcnow()
                )

        await db.transaction(mark)
        return
    if kind != "message" or not isinstance(data.get("body"), str):
        await _send(ws, {"type": "error", "code": "invalid_message", "message": "unknown type"})
        return
    try:
        received, profile_id = await customer_writes(
            db, ws.app.state.hooks, state["user"], channel, data["body"], []
        )
    except ApiError as exc:
        await _send(ws, {"type": "error", "code": exc.code, "message": exc.message})
        return
    new = received.conversation.id
    if new != cid:
        state["conversation"] = new
        hub.add_key(sub, new)
        await _presence(db, new, True)
        # Her own message and the bot's answer were announced before this socket listened.
        for m in [received.message, *received.replies]:
            if not m.internal:
                await _send(
                    ws,
                    {
                        "type": "message",
                        "conversation_id": new,
                        "message": service.message_read(m).model_dump(mode="json"),
                    },
                )
    user: WidgetUser = state["user"]
    if user.profile_id != profile_id:
        state["user"] = WidgetUser(
            user.source_id,
            user.source_kind,
            user.user_id,
            user.anonymous_id,
            user.verified,
            profile_id,
            user.conversation_id,
        )


@router.websocket("/api/conversations/ws")
async def staff_socket(ws: WebSocket) -> None:
    """Live events of the conversations a staff member may see."""
    db: Database = ws.app.state.db
    token = ws.query_params.get("token") or ""
    async with db.session() as session:
        staff = await get_staff_by_token(session, token=token) if token else None
    if staff is None:
        await ws.close(code=4401, reason="a valid staff token is required")
        return
    if staff.role not in STAFF_ROLES:
        await ws.close(code=4403, reason=f"role {staff.role.value!r} may not do this")
        return
    await ws.accept()
    _gauge("conversation_staff", 1)
    hub = live.hub_for(db)
    hub.loader = load_message
    everything = staff.role in (Role.admin, Role.agent)
    sub = await hub.subscribe(db, [live.ALL] if everything else [], customer=False)
    try:
        await _send(ws, {"type": "ready", "staff": staff.name, "all": everything})

        async def handle(data: dict[str, Any]) -> None:
            await _staff_says(ws, db, hub, sub, staff, data)

        await _pump(ws, sub, handle)
    except WebSocketDisconnect:
        pass
    finally:
        await hub.unsubscribe(sub)
        _gauge("conversation_staff", -1)


async def _staff_says(
    ws: WebSocket,
    db: Database,
    hub: live.Hub,
    sub: live.Subscriber,
    staff: Staff,
    data: dict[str, Any],
) -> None:
    cid = data.get("conversation_id")
    if not isinstance(cid, int):
        await _send(ws, {"type": "error", "code": "invalid_message", "message": "no conversation"})
        return
    async with db.session() as session:
        c = await service.get(session, conversation_id=cid)
        allowed = c is not None and await service.can_access(
            session, db.settings, staff=staff, conversation=c
        )
    if not allowed:
        await _send(ws, {"type": "error", "code": "conversation_not_found", "message": str(cid)})
        return
    if data.get("type") == "subscribe":
        hub.add_key(sub, cid)
        await _send(ws, {"type": "subscribed", "conversation_id": cid})
    elif data.get("type") == "typing":
        await live.publish_now(db, {"type": "typing", "conversation_id": cid, "author": staff.name})
