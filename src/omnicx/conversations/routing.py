"""Who answers: business hours, and round-robin assignment with a capacity per agent.

Round robin: among the active agents serving the conversation's queue who hold fewer open
assigned conversations than their capacity, the one assigned longest ago (never first) gets it.
The candidates' rows are locked (``FOR UPDATE`` on PostgreSQL; SQLite writers are serialised
anyway), so two processes handing off at once never give one agent more than the capacity.
A conversation that finds nobody free stays ``queued``; the next free agent picks it up when an
agent resolves one (``next_in_queue``) or by manual assignment.

Business hours: ``OMNICX_CONVERSATIONS_BUSINESS_HOURS`` maps weekdays (mon … sun) to
``HH:MM-HH:MM`` in ``OMNICX_CONVERSATIONS_TIMEZONE``; empty means always open. Outside them a
handoff is queued without assignment and the customer gets the away message.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.conversations.models import Agent, Conversation
from omnicx.settings import Settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hhmm(text: str) -> time:
    hours, _, minutes = text.strip().partition(":")
    return time(int(hours), int(minutes or 0))


def is_open(settings: Settings, now: datetime) -> bool:
    hours = settings.conversations_business_hours
    if not hours:
        return True
    local = now.astimezone(ZoneInfo(settings.conversations_timezone))
    window = hours.get(DAYS[local.weekday()])
    if not window:
        return False
    start, _, end = window.partition("-")
    return _hhmm(start) <= local.time().replace(tzinfo=None) < _hhmm(end)


async def open_counts(session: AsyncSession, names: list[str] | None = None) -> dict[str, int]:
    stmt = (
        select(Conversation.assignee, func.count())
        .where(Conversation.status == "assigned", Conversation.assignee.is_not(None))
        .group_by(Conversation.assignee)
    )
    if names is not None:
        stmt = stmt.where(Conversation.assignee.in_(names))
    return {name: n for name, n in (await session.execute(stmt)).all() if name is not None}


async def pick_agent(session: AsyncSession, *, queue: str) -> Agent | None:
    """The next agent of ``queue`` with room, by round robin; locked for this transaction."""
    stmt = select(Agent).where(Agent.active.is_(True)).order_by(Agent.name)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    agents = [a for a in (await session.execute(stmt)).scalars() if queue in a.queues]
    if not agents:
        return None
    counts = await open_counts(session, [a.name for a in agents])
    free = [a for a in agents if counts.get(a.name, 0) < a.capacity]
    if not free:
        return None
    epoch = datetime.min.replace(tzinfo=None)
    return min(
        free,
        key=lambda a: (
            a.last_assigned_at.replace(tzinfo=None) if a.last_assigned_at else epoch,
            a.name,
        ),
    )
