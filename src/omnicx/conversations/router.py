"""The staff API of conversations: the inbox, replies and notes, assignment, handoff, resolve,
agents, canned responses, the bot's FAQ, and the agents' WebSocket.

Roles: admins and agents act on every conversation; store associates on those of customers with
a pickup at their store or that were opened at their store or by them (others are a 404 to
them, so their existence does not leak). Analysts and marketers do not read conversations;
marketers edit the FAQ.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.deps import require
from omnicx.auth.service import Role, Staff
from omnicx.conversations import routing, service
from omnicx.conversations.models import Agent, CannedResponse, Conversation, FaqEntry
from omnicx.conversations.schemas import (
    AgentRead,
    AgentWrite,
    AssignRequest,
    CannedRead,
    CannedWrite,
    ConversationOpen,
    ConversationPage,
    ConversationRead,
    FaqRead,
    FaqWrite,
    HandoffRequest,
    MessagePage,
    MessageRead,
    ResolveRequest,
    StaffMessageCreate,
)
from omnicx.db import CursorId, Database, Db, RowId, utcnow
from omnicx.errors import ApiError
from omnicx.hooks import AppHooks
from omnicx.profiles.router import find_profile

router = APIRouter(tags=["conversations"])

Desk = Annotated[Staff, Depends(require(Role.admin, Role.agent, Role.store_associate))]
AgentOnly = Annotated[Staff, Depends(require(Role.admin, Role.agent))]
Admin = Annotated[Staff, Depends(require(Role.admin))]
FaqEditor = Annotated[Staff, Depends(require(Role.admin, Role.marketer))]
FaqReader = Annotated[Staff, Depends(require(Role.admin, Role.marketer, Role.agent))]
STATUS_PATTERN = r"^(bot|queued|assigned|resolved)(,(bot|queued|assigned|resolved))*$"


async def reachable(session: AsyncSession, db: Database, staff: Staff, cid: int) -> Conversation:
    c = await service.get(session, conversation_id=cid)
    if c is None or not await service.can_access(session, db.settings, staff=staff, conversation=c):
        raise ApiError(404, "conversation_not_found", f"no conversation {cid}")
    return c


def read(db: Database, c: Conversation) -> ConversationRead:
    return service.conversation_read(c, db.settings, utcnow())


@router.get("/api/conversations", response_model=ConversationPage)
async def list_conversations(
    db: Db,
    staff: Desk,
    status: Annotated[str | None, Query(pattern=STATUS_PATTERN)] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    store: Annotated[str | None, Query(max_length=100)] = None,
    before: CursorId | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ConversationPage:
    """Conversations, newest activity first; filter by status (comma list), queue, assignee,
    store."""
    async with db.session() as session:
        rows = await service.list_conversations(
            session,
            db.settings,
            staff=staff,
            status=status.split(",") if status else (),
            queue=queue,
            assignee=assignee,
            store_id=store,
            before=before,
            limit=limit,
        )
        return ConversationPage(items=[read(db, c) for c in rows])


@router.post("/api/conversations", response_model=ConversationRead, status_code=201)
async def open_conversation(
    db: Db, hooks: AppHooks, staff: Desk, body: ConversationOpen
) -> ConversationRead:
    """Open (or join) a customer's thread from the store or the phone, with a first note."""

    async def work(session: AsyncSession) -> ConversationRead:
        profile = await find_profile(db, session, body.to)
        c, _ = await service.open_by_staff(
            session,
            db.settings,
            hooks,
            profile_id=profile.id,
            staff=staff,
            body=body.body,
            internal=body.internal,
            channel=body.channel,
            store_id=body.store_id,
            now=utcnow(),
        )
        return read(db, c)

    return await db.transaction(work)


@router.get("/api/conversations/{conversation_id}", response_model=ConversationRead)
async def get_conversation(db: Db, staff: Desk, conversation_id: RowId) -> ConversationRead:
    """One conversation with its handoff (transcript and what the bot collected)."""
    async with db.session() as session:
        return read(db, await reachable(session, db, staff, conversation_id))


@router.get("/api/conversations/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(
    db: Db,
    staff: Desk,
    conversation_id: RowId,
    after: CursorId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> MessagePage:
    """The thread, oldest first, internal notes included."""
    async with db.session() as session:
        c = await reachable(session, db, staff, conversation_id)
        rows = await service.messages(
            session, conversation_id=c.id, include_internal=True, after=after, limit=limit
        )
        return MessagePage(items=[service.message_read(m) for m in rows])


@router.post(
    "/api/conversations/{conversation_id}/messages", response_model=MessageRead, status_code=201
)
async def post_message(
    db: Db, hooks: AppHooks, staff: Desk, conversation_id: RowId, body: StaffMessageCreate
) -> MessageRead:
    """Reply to the customer (live, or by push / SMS / email with a link back) or add a note."""
    if (body.body is None) == (body.canned is None):
        raise ApiError(422, "invalid_request", "give either body or canned")

    async def work(session: AsyncSession) -> MessageRead:
        c = await reachable(session, db, staff, conversation_id)
        text = body.body or await service.canned_body(session, name=body.canned or "")
        message = await service.post_staff_message(
            session,
            db.settings,
            hooks,
            conversation=c,
            staff=staff,
            body=text,
            internal=body.internal,
            channel=body.channel,
            attachments=[a.model_dump() for a in body.attachments],
            now=utcnow(),
        )
        return service.message_read(message)

    return await db.transaction(work)


@router.post("/api/conversations/{conversation_id}/assign", response_model=ConversationRead)
async def assign(
    db: Db, hooks: AppHooks, _staff: AgentOnly, conversation_id: RowId, body: AssignRequest
) -> ConversationRead:
    """Assign to an agent, or (no agent given) to the next free one of the queue."""

    async def work(session: AsyncSession) -> ConversationRead:
        c = await reachable(session, db, _staff, conversation_id)
        if body.queue:
            c.queue = body.queue
        if c.status == "bot":
            await service.hand_off(
                session, db.settings, hooks, conversation=c, reason="assigned", now=utcnow()
            )
        if body.agent is not None or c.status != "assigned":
            await service.assign(
                session, db.settings, hooks, conversation=c, agent=body.agent, now=utcnow()
            )
        return read(db, c)

    return await db.transaction(work)


@router.post("/api/conversations/{conversation_id}/handoff", response_model=ConversationRead)
async def hand_off(
    db: Db, hooks: AppHooks, staff: Desk, conversation_id: RowId, body: HandoffRequest
) -> ConversationRead:
    """Take the conversation from the bot into a queue."""

    async def work(session: AsyncSession) -> ConversationRead:
        c = await reachable(session, db, staff, conversation_id)
        if c.status != "bot":
            raise ApiError(409, "not_with_bot", f"conversation {c.id} is {c.status}")
        await service.hand_off(
            session,
            db.settings,
            hooks,
            conversation=c,
            reason=body.reason,
            queue=body.queue,
            now=utcnow(),
        )
        return read(db, c)

    return await db.transaction(work)


@router.post("/api/conversations/{conversation_id}/resolve", response_model=ConversationRead)
async def resolve(
    db: Db, hooks: AppHooks, staff: Desk, conversation_id: RowId, body: ResolveRequest
) -> ConversationRead:
    """Resolve; the customer is asked for a CSAT score on her channel."""

    async def work(session: AsyncSession) -> ConversationRead:
        c = await reachable(session, db, staff, conversation_id)
        await service.resolve(
            session, db.settings, hooks, conversation=c, csat=body.csat, now=utcnow()
        )
        return read(db, c)

    return await db.transaction(work)


@router.get("/api/profiles/{external_id}/conversations", response_model=ConversationPage)
async def profile_conversations(
    db: Db, staff: Desk, external_id: str, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> ConversationPage:
    """A customer's conversations, newest first."""
    async with db.session() as session:
        profile = await find_profile(db, session, external_id)
        rows = await service.list_conversations(
            session, db.settings, staff=staff, profile_id=profile.id, limit=limit
        )
        return ConversationPage(items=[read(db, c) for c in rows])


# --- agents, canned responses, FAQ ------------------------------------------------------------


@router.get("/api/conversation-agents", response_model=list[AgentRead])
async def list_agents(db: Db, _staff: AgentOnly) -> list[AgentRead]:
    """Agents, their queues, capacity and open conversations."""
    async with db.session() as session:
        agents = list((await session.execute(select(Agent).order_by(Agent.name))).scalars())
        counts = await routing.open_counts(session)
    return [
        AgentRead(
            name=a.name,
            queues=a.queues,
            capacity=a.capacity,
            active=a.active,
            open_conversations=counts.get(a.name, 0),
        )
        for a in agents
    ]


@router.put("/api/conversation-agents/{name}", response_model=AgentRead)
async def put_agent(db: Db, _staff: Admin, name: str, body: AgentWrite) -> AgentRead:
    """Add or change an agent (the name of their staff token): queues, capacity, active."""
    if not name or len(name) > 200:
        raise ApiError(422, "invalid_request", "agent names are 1 to 200 characters")

    async def work(session: AsyncSession) -> AgentRead:
        agent = await session.get(Agent, name)
        if agent is None:
            agent = Agent(name=name)
            session.add(agent)
        agent.queues, agent.capacity, agent.active = body.queues, body.capacity, body.active
        await session.flush()
        counts = await routing.open_counts(session, [name])
        return AgentRead(
            name=name,
            queues=agent.queues,
            capacity=agent.capacity,
            active=agent.active,
            open_conversations=counts.get(name, 0),
        )

    return await db.transaction(work)


@router.get("/api/canned-responses", response_model=list[CannedRead])
async def list_canned(db: Db, _staff: Desk) -> list[CannedRead]:
    """Canned responses by name."""
    async with db.session() as session:
        rows = await session.execute(select(CannedResponse).order_by(CannedResponse.name))
        return [CannedRead(name=r.name, body=r.body) for r in rows.scalars()]


@router.put("/api/canned-responses/{name}", response_model=CannedRead)
async def put_canned(db: Db, _staff: AgentOnly, name: str, body: CannedWrite) -> CannedRead:
    """Create or replace a canned response."""
    if not name or len(name) > 100:
        raise ApiError(422, "invalid_request", "names are 1 to 100 characters")

    async def work(session: AsyncSession) -> CannedRead:
        row = await session.get(CannedResponse, name)
        if row is None:
            row = CannedResponse(name=name)
            session.add(row)
        row.body, row.updated_at = body.body, utcnow()
        return CannedRead(name=name, body=body.body)

    return await db.transaction(work)


@router.delete("/api/canned-responses/{name}", status_code=204)
async def delete_canned(db: Db, _staff: AgentOnly, name: str) -> Response:
    """Delete a canned response."""
    if not await _delete(db, CannedResponse, name):
        raise ApiError(404, "canned_response_not_found", f"no canned response {name!r}")
    return Response(status_code=204)


@router.get("/api/faq", response_model=list[FaqRead])
async def list_faq(db: Db, _staff: FaqReader) -> list[FaqRead]:
    """The bot's FAQ entries stored through the API (the FAQ file's are not listed)."""
    async with db.session() as session:
        rows = await session.execute(select(FaqEntry).order_by(FaqEntry.id))
        return [
            FaqRead(id=r.id, questions=r.questions, answer=r.answer, topic=r.topic)
            for r in rows.scalars()
        ]


@router.put("/api/faq/{faq_id}", response_model=FaqRead)
async def put_faq(db: Db, _staff: FaqEditor, faq_id: str, body: FaqWrite) -> FaqRead:
    """Create or replace an FAQ entry: the ways customers ask, and the bot's answer."""
    if not faq_id or len(faq_id) > 100:
        raise ApiError(422, "invalid_request", "ids are 1 to 100 characters")

    async def work(session: AsyncSession) -> FaqRead:
        row = await session.get(FaqEntry, faq_id)
        if row is None:
            row = FaqEntry(id=faq_id)
            session.add(row)
        row.questions, row.answer, row.topic = body.questions, body.answer, body.topic
        row.updated_at = utcnow()
        return FaqRead(id=faq_id, questions=body.questions, answer=body.answer, topic=body.topic)

    return await db.transaction(work)


@router.delete("/api/faq/{faq_id}", status_code=204)
async def delete_faq(db: Db, _staff: FaqEditor, faq_id: str) -> Response:
    """Delete an FAQ entry."""
    if not await _delete(db, FaqEntry, faq_id):
        raise ApiError(404, "faq_not_found", f"no FAQ entry {faq_id!r}")
    return Response(status_code=204)


async def _delete(db: Database, model: type[CannedResponse | FaqEntry], key: str) -> bool:
    """Delete the row of ``model`` with primary key ``key``; False if there was none."""

    async def work(session: AsyncSession) -> bool:
        row = await session.get(model, key)
        if row is not None:
            await session.delete(row)
        return row is not None

    return await db.transaction(work)
