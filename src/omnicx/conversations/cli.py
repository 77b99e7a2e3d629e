"""``omnicx conversations faq-import|agent|list``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import Role, Staff
from omnicx.conversations import bot, queries
from omnicx.conversations.models import Agent, Conversation, FaqEntry
from omnicx.db import Database, utcnow
from omnicx.settings import get_settings

app = typer.Typer(help="Conversations: the bot's FAQ, agents, the inbox.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")
CLI_STAFF = Staff(token_id=0, name="cli", role=Role.admin, store_id=None)


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(get_settings())
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


@app.command("faq-import")
def faq_import(path: Annotated[Path, typer.Argument(metavar="FILE.yaml|FILE.json")]) -> None:
    """Create or replace FAQ entries from a file: a list of {id, questions, answer, topic}."""
    try:
        entries = bot.faq_from_file(str(path))
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        err.print(f"[red]invalid FAQ file[/red]: {exc}")
        raise typer.Exit(1) from exc
    if not entries:
        err.print("[red]invalid FAQ file[/red]: no entry with an answer")
        raise typer.Exit(1)

    async def work(db: Database) -> int:
        async def save(session: AsyncSession) -> int:
            for entry in entries:
                row = await session.get(FaqEntry, entry.id[:100])
                if row is None:
                    row = FaqEntry(id=entry.id[:100])
                    session.add(row)
                row.questions, row.answer = entry.questions, entry.answer
                row.topic, row.updated_at = entry.topic, utcnow()
            return len(entries)

        return await db.transaction(save)

    out.print(f"{_run(work)} FAQ entries imported")


@app.command()
def agent(
    name: Annotated[str, typer.Argument(help="The agent's staff token or user name.")],
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Repeat for each.")] = None,
    capacity: Annotated[int, typer.Option(min=0, max=1000)] = 5,
    active: Annotated[bool, typer.Option("--active/--inactive")] = True,
) -> None:
    """Add or change an agent: the queues they serve, how many conversations at once."""

    async def work(db: Database) -> None:
        async def save(session: AsyncSession) -> None:
            row = await session.get(Agent, name)
            if row is None:
                row = Agent(name=name)
                session.add(row)
            row.queues = queue or [db.settings.conversations_default_queue]
            row.capacity, row.active = capacity, active

        await db.transaction(save)

    _run(work)
    out.print(f"agent {name}: {', '.join(queue or ['default queue'])}, capacity {capacity}")


@app.command("list")
def list_(
    status: Annotated[str, typer.Option(help="Comma list of bot, queued, assigned, resolved.")] = (
        "bot,queued,assigned"
    ),
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Conversations, newest activity first."""

    async def work(db: Database) -> list[Conversation]:
        async with db.session() as session:
            return await queries.list_conversations(
                session, db.settings, staff=CLI_STAFF, status=status.split(","), limit=limit
            )

    table = Table("id", "status", "queue", "assignee", "channel", "topic", "last message")
    for c in _run(work):
        table.add_row(
            str(c.id),
            c.status,
            c.queue,
            c.assignee or "",
            c.channel,
            c.topic or "",
            f"{c.last_message_at:%Y-%m-%d %H:%M}",
        )
    out.print(table)
