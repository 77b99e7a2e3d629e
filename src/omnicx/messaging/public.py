"""Links inside messages, reached by customers without an account: unsubscribe, open pixel,
click redirect. Every one is signed (:mod:`omnicx.messaging.signing`); a bad signature is a 404.

Unsubscribe follows RFC 8058: mail clients POST ``List-Unsubscribe=One-Click`` to the URL in the
``List-Unsubscribe`` header and the person is unsubscribed at once. A GET (a person following
the footer link, or a link scanner) only shows a page whose buttons POST, so scanners never
unsubscribe anyone. Unsubscribing denies consent for the message's channel and topic; the page
also offers every topic of the channel.
"""

from __future__ import annotations

import base64
import html
from typing import Annotated, Literal
from urllib.parse import parse_qs, parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Db, utcnow
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.messaging import engagement
from omnicx.messaging.models import Message
from omnicx.messaging.providers import twilio
from omnicx.messaging.signing import Links

router = APIRouter(prefix="/m", tags=["message links"], include_in_schema=True)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private"}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        "<body style='font-family:sans-serif;max-width:32rem;margin:3rem auto'>"
        f"{body}</body></html>",
        headers=NO_STORE,
    )


def _message_id(db: Db, purpose: str, token: str, extra: str = "") -> int:
    message_id = Links(db.settings).verify(purpose, token, extra)
    if message_id is None:
        raise ApiError(404, "not_found", "this link is not valid")
    return message_id


@router.get("/u/{token}", response_class=HTMLResponse)
async def unsubscribe_page(db: Db, token: str) -> HTMLResponse:
    """The unsubscribe page (its buttons POST; a GET changes nothing)."""
    message_id = _message_id(db, "u", token)
    async with db.session() as session:
        message = await session.get(Message, message_id)
    if message is None or message.channel is None:
        raise ApiError(404, "not_found", "this link is not valid")
    topic, channel = html.escape(message.topic), html.escape(message.channel)
    return _page(
        "Unsubscribe",
        f"<h1>Unsubscribe</h1><form method='post'>"
        f"<p><button name='scope' value='topic'>Stop {topic} messages by {channel}</button></p>"
        f"<p><button name='scope' value='channel'>Stop every marketing message by {channel}"
        "</button></p></form>",
    )


@router.post("/u/{token}", response_class=HTMLResponse)
async def unsubscribe(db: Db, hooks: AppHooks, token: str, request: Request) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058) or the page's form: consent denied at once."""
    message_id = _message_id(db, "u", token)
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    scope: Literal["topic", "channel"] = (
        "channel" if form.get("scope", [""])[0] == "channel" else "topic"
    )

    async def work(session: AsyncSession) -> Message | None:
        return await engagement.unsubscribe(
            session, hooks, message_id=message_id, scope=scope, now=utcnow()
        )

    message = await db.transaction(work)
    if message is None:
        raise ApiError(404, "not_found", "this link is not valid")
    what = message.topic if scope == "topic" else "marketing"
    return _page(
        "Unsubscribed",
        f"<h1>You are unsubscribed</h1><p>No more {html.escape(what)} messages by "
        f"{html.escape(message.channel or '')}.</p>",
    )


@router.get("/o/{token}.gif")
async def open_pixel(db: Db, hooks: AppHooks, token: str) -> Response:
    """The open-tracking pixel: records ``opened`` once."""
    message_id = Links(db.settings).verify("o", token)
    if message_id is not None:

        async def work(session: AsyncSession) -> None:
            await engagement.engage(
                session, hooks, message_id=message_id, status="opened", now=utcnow()
            )

        await db.transaction(work)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get("/c/{token}")
async def click(
    db: Db, hooks: AppHooks, token: str, url: Annotated[str, Query(max_length=4000)]
) -> RedirectResponse:
    """A tracked link: records ``clicked`` and redirects (only to the URL that was signed)."""
    message_id = _message_id(db, "c", token, url)

    async def work(session: AsyncSession) -> None:
        await engagement.engage(
            session, hooks, message_id=message_id, status="clicked", now=utcnow(), url=url
        )

    await db.transaction(work)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


@router.post("/twilio/status")
async def twilio_status(db: Db, hooks: AppHooks, request: Request) -> Response:
    """Twilio's status callback (signed with the auth token): delivered, failed, undelivered."""
    settings = db.settings
    if settings.twilio_auth_token is None:
        raise ApiError(404, "not_found", "Twilio is not configured")
    pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    url = settings.twilio_status_callback_url or str(request.url)
    if not twilio.verify_signature(
        auth_token=settings.twilio_auth_token.get_secret_value(),
        url=url,
        params=pairs,
        signature_header=request.headers.get("x-twilio-signature", ""),
    ):
        raise ApiError(403, "bad_signature", "the X-Twilio-Signature does not match")
    try:
        report = twilio.parse_status_callback(dict(pairs))
    except ValueError as exc:
        raise ApiError(400, "invalid_callback", str(exc)) from exc
    if report is None or report.status == "sent":
        return Response(status_code=204)

    async def work(session: AsyncSession) -> None:
        message_id = await engagement.by_provider_id(
            session, provider="twilio", provider_message_id=report.provider_message_id
        )
        if message_id is None:
            return
        now = utcnow()
        if report.status == "delivered":
            await engagement.engage(
                session, hooks, message_id=message_id, status="delivered", now=now
            )
        else:
            await engagement.delivery_failed(
                session,
                hooks,
                settings,
                message_id=message_id,
                reason=f"twilio: {report.status} ({report.error_code or 'no code'})",
                prune=report.prune,
                now=now,
            )

    await db.transaction(work)
    return Response(status_code=204)
