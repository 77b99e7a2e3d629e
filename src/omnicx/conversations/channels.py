"""Customer channels in: the web chat widget and the app (HTTP; the WebSocket is in
:mod:`.sockets`), inbound SMS (Twilio), inbound email (raw MIME), links back into a thread, and
the CSAT page. None takes a staff token: each checks its own credentials.

- Widget / app: see :mod:`.customers` for identity (write key + user hash, anonymous id, or a
  thread link). ``GET /c/conversation`` reads her open thread, ``POST /c/messages`` writes.
- SMS: Twilio's incoming-message webhook (form-encoded, ``X-Twilio-Signature`` checked against
  ``OMNICX_TWILIO_AUTH_TOKEN`` and ``OMNICX_CONVERSATIONS_SMS_URL`` or the URL called); the
  sender is found by phone number (created if new). A bare 1-5 after a CSAT request is the score.
  Answers go back through Messaging; the webhook answers empty TwiML.
- Email: ``POST /c/email`` with the raw message (``message/rfc822``) as forwarded by an inbound
  mail service, authenticated with a source's write key as the Basic user name (as ingest is).
  The sender is found by address; ``Message-ID`` makes a re-delivery a no-op; ``In-Reply-To`` /
  ``References`` naming one of our emails reopens that thread. Quoted history below the reply
  ("On … wrote:", ``>`` lines) is cut.
"""

from __future__ import annotations

import html
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, parse_qsl

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import get_source_by_write_key
from omnicx.conversations import customers, outbound, service
from omnicx.conversations.customers import WidgetUser
from omnicx.conversations.models import ConversationMessage
from omnicx.conversations.schemas import CustomerMessageCreate, MessagePage, MessageRead
from omnicx.db import Db, utcnow
from omnicx.errors import ApiError, JsonResponse
from omnicx.hooks import AppHooks
from omnicx.ingest.service import write_key_from
from omnicx.messaging.providers import twilio

router = APIRouter(prefix="/c", tags=["conversation channels"])
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
OUR_EMAIL_ID = re.compile(r"<omnicx\.(\d+)\.[0-9a-f]+@")
QUOTE_START = re.compile(
    r"^\s*(On .+ wrote:|-----Original Message-----|From: .+)\s*$", re.MULTILINE
)
MAX_EMAIL_BYTES = 1024 * 1024


def widget_params(request: Request) -> dict[str, str | None]:
    h, q = request.headers, request.query_params
    return {
        "write_key": h.get("x-omnicx-write-key") or q.get("write_key"),
        "user_id": h.get("x-omnicx-user-id") or q.get("user_id"),
        "user_hash": h.get("x-omnicx-user-hash") or q.get("user_hash"),
        "anonymous_id": h.get("x-omnicx-anonymous-id") or q.get("anonymous_id"),
        "thread": h.get("x-omnicx-thread") or q.get("thread"),
    }


async def widget_user(request: Request) -> WidgetUser:
    return await customers.authenticate(request.app.state.db, widget_params(request), utcnow())


Customer = Annotated[WidgetUser, Depends(widget_user)]


def channel_of(request: Request) -> str:
    return "inapp" if request.query_params.get("channel") == "inapp" else "web"


@router.get("/conversation")
async def current_conversation(db: Db, user: Customer) -> JsonResponse:
    """Her open conversation (or the last one) and its messages, without internal notes."""
    if user.profile_id is None:
        return JsonResponse({"conversation": None, "messages": []})
    async with db.session() as session:
        c = await service.open_of(session, profile_id=user.profile_id)
        if c is None and user.conversation_id is not None:
            c = await service.get(session, conversation_id=user.conversation_id)
        c = c or await service.latest_of(session, profile_id=user.profile_id)
        if c is None or c.profile_id != user.profile_id:
            return JsonResponse({"conversation": None, "messages": []})
        rows = await service.messages(session, conversation_id=c.id, include_internal=False)
        return JsonResponse(
            {
                "conversation": {"id": c.id, "status": c.status, "assignee": c.assignee},
                "messages": [service.message_read(m).model_dump(mode="json") for m in rows],
            }
        )


async def customer_writes(
    db: Db,
    hooks: AppHooks,
    user: WidgetUser,
    channel: str,
    body: str,
    attachments: list[dict[str, Any]],
) -> tuple[service.Received, str]:
    """One customer message from the widget or app, in one transaction: her profile resolved
    (and merged, when she just signed in), the thread joined, the bot's answer."""
    settings = db.settings
    service.check_body(settings, body)

    async def work(session: AsyncSession) -> tuple[service.Received, str]:
        now = utcnow()
        profile_id = user.profile_id
        if user.conversation_id is None or profile_id is None:
            profile_id = await customers.resolve(
                session,
                settings,
                hooks,
                source_id=user.source_id,
                channel=user.source_kind,
                now=now,
                user_id=user.user_id,
                anonymous_id=user.anonymous_id,
                properties={"via": channel},
            )
        received = await service.receive(
            session,
            settings,
            hooks,
            profile_id=profile_id,
            channel=channel,
            body=body,
            now=now,
            verified=user.verified,
            attachments=attachments,
            thread_id=user.conversation_id,
        )
        return received, profile_id

    return await db.transaction(work)


@router.post("/messages", status_code=201, response_model=MessagePage)
async def post_customer_message(
    db: Db, hooks: AppHooks, user: Customer, body: CustomerMessageCreate, request: Request
) -> MessagePage:
    """The customer writes; the answer holds her message and any reply of the bot."""
    received, _ = await customer_writes(
        db,
        hooks,
        user,
        channel_of(request),
        body.body,
        [a.model_dump() for a in body.attachments],
    )
    items: list[MessageRead] = [service.message_read(received.message)]
    items += [service.message_read(m) for m in received.replies if not m.internal]
    return MessagePage(items=items)


# --- SMS ---------------------------------------------------------------------------------------


@router.post("/twilio/sms")
async def inbound_sms(db: Db, hooks: AppHooks, request: Request) -> Response:
    """Twilio's incoming-message webhook (signed): the SMS joins the sender's thread."""
    settings = db.settings
    if settings.twilio_auth_token is None:
        raise ApiError(404, "not_found", "Twilio is not configured")
    raw = await request.body()
    if len(raw) > 64 * 1024:
        raise ApiError(413, "too_large", "the request is too large")
    pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    url = settings.conversations_sms_url or str(request.url)
    if not twilio.verify_signature(
        auth_token=settings.twilio_auth_token.get_secret_value(),
        url=url,
        params=pairs,
        signature_header=request.headers.get("x-twilio-signature", ""),
    ):
        raise ApiError(403, "bad_signature", "the X-Twilio-Signature does not match")
    form = dict(pairs)
    sender, sid = form.get("From", "").strip(), form.get("MessageSid") or form.get("SmsSid")
    if not sender or not sid:
        raise ApiError(400, "invalid_webhook", "From and MessageSid are required")
    text = form.get("Body", "")
    media = [
        {"url": form[f"MediaUrl{i}"], "content_type": form.get(f"MediaContentType{i}")}
        for i in range(min(int(form.get("NumMedia", "0") or 0), 10))
        if f"MediaUrl{i}" in form
    ]
    text = text or ("(attachment)" if media else "")

    async def work(session: AsyncSession) -> None:
        now = utcnow()
        if await service.by_external_id(session, external_id=f"twilio.{sid}") is not None:
            return  # Twilio retried a delivery we stored
        profile_id = await customers.resolve(
            session,
            settings,
            hooks,
            source_id=None,
            channel="sms",
            now=now,
            traits={"phone": sender},
            message_id=f"twilio.{sid}",
        )
        if text.strip() in {"1", "2", "3", "4", "5"}:
            asked = await service.awaiting_csat(session, settings, profile_id=profile_id, now=now)
            if asked is not None:
                await service.answer_csat(
                    session, hooks, conversation=asked, score=int(text), channel="sms", now=now
                )
                return
        await service.receive(
            session,
            settings,
            hooks,
            profile_id=profile_id,
            channel="sms",
            body=text,
            now=now,
            verified=True,  # Twilio vouches for the sending number
            attachments=media,
            external_id=f"twilio.{sid}",
        )

    await db.transaction(work)
    return Response(TWIML_EMPTY, media_type="text/xml")


# --- email -------------------------------------------------------------------------------------


def _text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    content = part.get_content().replace("\r\n", "\n")
    if part.get_content_type() == "text/html":
        content = html.unescape(re.sub(r"<[^>]+>", " ", content))
    match = QUOTE_START.search(content)
    if match:
        content = content[: match.start()]
    lines = [ln for ln in content.splitlines() if not ln.lstrip().startswith(">")]
    return "\n".join(lines).strip()


@router.post("/email", status_code=202)
async def inbound_email(db: Db, hooks: AppHooks, request: Request) -> JsonResponse:
    """A raw inbound email (MIME), threaded by Message-ID / In-Reply-To."""
    settings = db.settings
    key = write_key_from(request.headers.get("authorization"), None)
    async with db.session() as session:
        source = await get_source_by_write_key(session, write_key=key)
    if source is None:
        raise ApiError(401, "invalid_write_key", "unknown write key")
    raw = await request.body()
    if len(raw) > MAX_EMAIL_BYTES:
        raise ApiError(413, "too_large", f"emails are limited to {MAX_EMAIL_BYTES} bytes")
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    sender = parseaddr(str(mail.get("From", "")))[1].strip().lower()
    message_id = str(mail.get("Message-ID", "")).strip()
    if "@" not in sender or not message_id:
        raise ApiError(400, "invalid_email", "From and Message-ID are required")
    text = _text_of(mail)
    subject = str(mail.get("Subject", "")).strip()
    if not text:
        text = subject or "(empty email)"
    refs = f"{mail.get('In-Reply-To', '')} {mail.get('References', '')}"
    ours = [int(m) for m in OUR_EMAIL_ID.findall(refs)]
    theirs = re.findall(r"<[^>]+>", refs)

    async def work(session: AsyncSession) -> dict[str, Any]:
        now = utcnow()
        seen = await service.by_external_id(session, external_id=message_id[:500])
        if seen is not None:
            return {
                "conversation_id": seen.conversation_id,
                "message_id": seen.id,
                "duplicate": True,
            }
        profile_id = await customers.resolve(
            session,
            settings,
            hooks,
            source_id=source.id,
            channel="email",
            now=now,
            traits={"email": sender},
            message_id=f"email.{message_id[:400]}",
            properties={"subject": subject[:500]},
        )
        thread_id = None
        if ours or theirs:
            found = (
                await session.execute(
                    select(ConversationMessage.conversation_id)
                    .where(
                        ConversationMessage.delivery_message_id.in_(ours)
                        | ConversationMessage.external_id.in_(theirs)
                    )
                    .limit(1)
                )
            ).scalar_one_or_none()
            thread_id = found
        received = await service.receive(
            session,
            settings,
            hooks,
            profile_id=profile_id,
            channel="email",
            body=text,
            now=now,
            external_id=message_id[:500],
            thread_id=thread_id,
        )
        return {
            "conversation_id": received.conversation.id,
            "message_id": received.message.id,
            "duplicate": received.duplicate,
        }

    return JsonResponse(await db.transaction(work), 202)


# --- links back, CSAT, the widget script -----------------------------------------------------


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        "<body style='font-family:sans-serif;max-width:36rem;margin:2rem auto'>"
        f"{body}</body></html>",
        headers={"Cache-Control": "no-store, private"},
    )


@router.get("/t/{token}", response_class=HTMLResponse)
async def thread_page(
    db: Db, token: str, write_key: Annotated[str | None, Query(max_length=200)] = None
) -> HTMLResponse:
    """A link back into one conversation: the chat, opened on that thread."""
    if outbound.read_token(db.settings, "t", token, utcnow()) is None:
        raise ApiError(404, "not_found", "this link is not valid or has expired")
    host = db.settings.public_url.rstrip("/")
    config = {"host": host, "thread": token, "writeKey": write_key or "", "open": True}
    return _page(
        "Your conversation",
        f"<script src='{host}/c/widget.js'></script>"
        f"<script>OmniCXChat.start({html.escape(_json(config), quote=False)});</script>",
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode().replace("</", "<\\/")


@router.get("/csat/{token}", response_class=HTMLResponse)
async def csat_page(
    db: Db, token: str, score: Annotated[int | None, Query(ge=1, le=5)] = None
) -> HTMLResponse:
    """The CSAT question (its buttons POST; a GET, even from a link scanner, records nothing)."""
    if outbound.read_token(db.settings, "s", token, utcnow()) is None:
        raise ApiError(404, "not_found", "this link is not valid or has expired")
    buttons = "".join(
        f"<button name='score' value='{s}'{' autofocus' if s == score else ''}>{s}</button> "
        for s in range(1, 6)
    )
    return _page(
        "How did we do?",
        f"<h1>How did we do?</h1><form method='post'><p>{buttons}</p></form>"
        "<p>1 = poor, 5 = great</p>",
    )


@router.post("/csat/{token}", response_class=HTMLResponse)
async def csat_answer(db: Db, hooks: AppHooks, token: str, request: Request) -> HTMLResponse:
    """Record the CSAT score (once per conversation)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = form.get("score", [""])[0]
    if given not in {"1", "2", "3", "4", "5"}:
        raise ApiError(422, "invalid_score", "a CSAT score is 1 to 5")
    score = int(given)
    claim = outbound.read_token(db.settings, "s", token, utcnow())
    if claim is None:
        raise ApiError(404, "not_found", "this link is not valid or has expired")

    async def work(session: AsyncSession) -> None:
        c = await service.get(session, conversation_id=claim.conversation_id)
        if c is None:
            raise ApiError(404, "not_found", "this link is not valid or has expired")
        await service.answer_csat(
            session, hooks, conversation=c, score=score, channel=c.channel, now=utcnow()
        )

    await db.transaction(work)
    return _page("Thank you", "<h1>Thank you!</h1><p>Your answer helps us do better.</p>")


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    """The web chat widget (see README)."""
    script = resources.files("omnicx.conversations").joinpath("widget.js").read_bytes()
    return Response(
        script, media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
    )
