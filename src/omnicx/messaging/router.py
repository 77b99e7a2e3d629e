"""Staff API: send messages, read the delivery log, manage templates, the brand kit and the
suppression list."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import READERS, require
from omnicx.auth.service import Role, Staff
from omnicx.db import Db, RowId, utcnow
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.messaging import service
from omnicx.messaging.brand import load_brand, save_brand
from omnicx.messaging.models import Message, MessageTemplate
from omnicx.messaging.policies import suppress
from omnicx.messaging.providers.registry import configured
from omnicx.messaging.schemas import (
    NAME_PATTERN,
    BrandKit,
    MessageCreate,
    MessagePage,
    MessageRead,
    PreviewRead,
    PreviewRequest,
    SuppressionCreate,
    TemplateRead,
    TemplateWrite,
)
from omnicx.messaging.templates import (
    RenderError,
    TemplateInvalid,
    check_variants,
    render_content,
    variables_used,
)
from omnicx.profiles import service as profiles
from omnicx.profiles.router import find_profile

router = APIRouter(tags=["messaging"])

Reader = Annotated[Staff, Depends(require(*READERS))]
Sender = Annotated[Staff, Depends(require(Role.admin, Role.marketer, Role.agent))]
Author = Annotated[Staff, Depends(require(Role.admin, Role.marketer))]
Admin = Annotated[Staff, Depends(require(Role.admin))]


def message_read(m: Message) -> MessageRead:
    return MessageRead(
        id=m.id,
        idempotency_key=m.idempotency_key,
        profile_id=m.profile_id,
        message=m.template,
        category=m.category,
        topic=m.topic,
        requested=m.requested,
        channel=m.channel,
        provider=m.provider,
        choice_reason=m.choice_reason,
        status=m.status,
        reason=m.reason,
        attempts=m.attempts,
        to=(m.to or {}).get("value"),
        send_at=m.send_at,
        due_at=m.due_at,
        history=m.history,
        content=m.content,
        created_at=m.created_at,
        sent_at=m.sent_at,
        delivered_at=m.delivered_at,
        opened_at=m.opened_at,
        clicked_at=m.clicked_at,
    )


def template_read(t: MessageTemplate) -> TemplateRead:
    return TemplateRead.model_validate(t, from_attributes=True)


def invalid(exc: TemplateInvalid) -> ApiError:
    return ApiError(
        422,
        "template_invalid",
        str(exc),
        details=[p.as_dict() for p in exc.problems],
    )


@router.post("/api/messages", response_model=MessageRead)
async def send_message(
    db: Db, hooks: AppHooks, _staff: Sender, body: MessageCreate, response: Response
) -> MessageRead:
    """Send a message (queued, or skipped with the reason); the same idempotency key sends once."""
    request = service.SendRequest(
        to=body.to,
        message=body.message,
        channel=body.channel,
        data=body.data,
        event=body.event,
        idempotency_key=body.idempotency_key,
        quiet_hours=body.quiet_hours,
    )
    available = configured(db.settings)

    async def work(session: AsyncSession) -> service.Submitted:
        return await service.submit(
            session, db.settings, hooks, request=request, available=available, now=utcnow()
        )

    submitted = await db.transaction(work)
    response.status_code = 201 if submitted.created else 200
    return message_read(submitted.message)


@router.get("/api/messages/{message_id}", response_model=MessageRead)
async def get_message(db: Db, _staff: Reader, message_id: RowId) -> MessageRead:
    """One message: its channel and why, its status history and content."""
    async with db.session() as session:
        message = await session.get(Message, message_id)
    if message is None:
        raise ApiError(404, "message_not_found", f"no message {message_id}")
    return message_read(message)


@router.get("/api/profiles/{external_id}/messages", response_model=MessagePage)
async def profile_messages(
    db: Db,
    _staff: Reader,
    external_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagePage:
    """The messages sent (or skipped) to a customer, newest first."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        rows = (
            await session.execute(
                select(Message)
                .where(Message.profile_id == profile.id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
        ).scalars()
        return MessagePage(items=[message_read(m) for m in rows])


@router.get("/api/templates", response_model=list[TemplateRead])
async def list_templates(db: Db, _staff: Reader) -> list[TemplateRead]:
    """Every message template."""
    async with db.session() as session:
        rows = (
            await session.execute(select(MessageTemplate).order_by(MessageTemplate.name))
        ).scalars()
        return [template_read(t) for t in rows]


@router.get("/api/templates/{template_ref}", response_model=TemplateRead)
async def get_template(db: Db, _staff: Reader, template_ref: str) -> TemplateRead:
    """One template, by id or name."""
    async with db.session() as session:
        row = await service.get_template(session, template_ref)
    if row is None:
        raise ApiError(404, "template_not_found", f"no template {template_ref!r}")
    return template_read(row)


@router.put("/api/templates/{template_ref}", response_model=TemplateRead)
async def put_template(
    db: Db, _staff: Author, template_ref: str, body: TemplateWrite, response: Response
) -> TemplateRead:
    """Create the template ``name``, or replace it (by name or id; its version goes up).

    Liquid errors are refused with the field, line and column of each."""

    async def work(session: AsyncSession) -> TemplateRead:
        row = await service.get_template(session, template_ref)
        if row is None and (template_ref.isdigit() or not re.match(NAME_PATTERN, template_ref)):
            raise ApiError(404, "template_not_found", f"no template {template_ref!r}")
        try:
            check_variants(body.variants, await load_brand(session))
        except TemplateInvalid as exc:
            raise invalid(exc) from exc
        now = utcnow()
        if row is None:
            row = MessageTemplate(name=template_ref, version=0, created_at=now)
            session.add(row)
            response.status_code = 201
        row.description, row.category = body.description, body.category
        row.topic = body.topic or body.category
        row.variants = body.variants.model_dump(exclude_none=True)
        row.version += 1
        row.updated_at = now
        await session.flush()
        return template_read(row)

    return await db.transaction(work)


@router.delete("/api/templates/{template_ref}", status_code=204)
async def delete_template(db: Db, _staff: Author, template_ref: str) -> Response:
    """Delete a template (messages already sent keep their content)."""

    async def work(session: AsyncSession) -> None:
        row = await service.get_template(session, template_ref)
        if row is None:
            raise ApiError(404, "template_not_found", f"no template {template_ref!r}")
        await session.delete(row)

    await db.transaction(work)
    return Response(status_code=204)


@router.post("/api/templates/{template_ref}/preview", response_model=PreviewRead)
async def preview_template(
    db: Db, _staff: Sender, template_ref: str, body: PreviewRequest
) -> PreviewRead:
    """Render one variant for a profile (or with no profile), brand kit applied, nothing sent."""
    async with db.session() as session:
        row = await service.get_template(session, template_ref)
        if row is None:
            raise ApiError(404, "template_not_found", f"no template {template_ref!r}")
        profile = None
        if body.to is not None:
            found = await find_profile(db, session, body.to)
            profile = await profiles.read(session, profile=found)
        brand = await load_brand(session)
        context = await service.template_context(
            session,
            db.settings,
            profile=profile,
            brand=brand,
            needed=variables_used(row.variants, body.channel),
            data=body.data,
            event=body.event,
        )
    context["unsubscribe_url"] = f"{db.settings.public_url.rstrip('/')}/m/u/preview"
    try:
        content = render_content(
            body.channel,
            row.variants,
            context,
            brand,
            from_email=brand.from_email or db.settings.email_from,
        )
    except LookupError as exc:
        raise ApiError(422, "no_variant", str(exc)) from exc
    except RenderError as exc:
        raise ApiError(422, "render_failed", str(exc)) from exc
    return PreviewRead(channel=body.channel, content=content.__dict__)


@router.get("/api/brand", response_model=BrandKit)
async def get_brand(db: Db, _staff: Reader) -> BrandKit:
    """The brand kit applied to every message."""
    async with db.session() as session:
        return await load_brand(session)


@router.put("/api/brand", response_model=BrandKit)
async def put_brand(db: Db, _staff: Author, body: BrandKit) -> BrandKit:
    """Replace the brand kit; its partials and layout are checked like templates."""

    async def work(session: AsyncSession) -> BrandKit:
        try:
            return await save_brand(session, kit=body, now=utcnow())
        except TemplateInvalid as exc:
            raise invalid(exc) from exc

    return await db.transaction(work)


@router.post("/api/suppressions")
async def add_suppression(db: Db, _staff: Admin, body: SuppressionCreate) -> dict[str, str]:
    """Put an address on the suppression list (a complaint, a bounce reported elsewhere)."""

    async def work(session: AsyncSession) -> None:
        await suppress(
            session, db.settings, kind=body.kind, value=body.value, reason=body.reason, now=utcnow()
        )

    await db.transaction(work)
    return {"kind": body.kind, "reason": body.reason}
