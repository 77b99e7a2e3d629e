"""``omnicx journeys load|list|stats``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database, utcnow
from omnicx.errors import ApiError
from omnicx.journeys import catalog, loader, service, stats
from omnicx.settings import get_settings

app = typer.Typer(help="Journeys: load, list, stats.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(get_settings())
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ApiError as exc:
        err.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(1) from exc


@app.command()
def load(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="YAML or JSON files; default: the examples")
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish/--draft", help="Make them live, or keep them drafts.")
    ] = False,
) -> None:
    """Create or update journeys (and the templates they need) from files."""
    try:
        docs = [loader.read_file(p) for p in paths] if paths else loader.shipped()
    except (OSError, ValueError) as exc:
        err.print(f"[red]invalid journey file[/red]: {exc}")
        raise typer.Exit(1) from exc

    async def work(db: Database) -> list[loader.Loaded]:
        async def save(session: AsyncSession) -> list[loader.Loaded]:
            return await loader.load(session, docs, publish=publish, by="cli", now=utcnow())

        done = await db.transaction(save)
        catalog.changed()
        return done

    for item in _run(work):
        created = f"; templates created: {', '.join(item.templates_created)}"
        out.print(
            f"{item.journey}: "
            + (f"published v{item.published}" if item.published else "draft saved")
            + (created if item.templates_created else "")
        )


@app.command("list")
def list_journeys() -> None:
    """Every journey, its status and how many customers are in it."""

    async def work(db: Database) -> None:
        async with db.session() as session:
            rows = await service.list_all(session)
        table = Table("id", "name", "status", "version", "active", "entered")
        for j in rows:
            table.add_row(
                j.id, j.name, j.status, str(j.live_version or "-"), str(j.active), str(j.entered)
            )
        out.print(table)

    _run(work)


@app.command("stats")
def journey_stats(journey_id: str) -> None:
    """Entered, active, converted per variant, and what happened at each node."""

    async def work(db: Database) -> None:
        async with db.session() as session:
            await service.get_or_404(session, journey_id)
            result = await stats.journey_stats(session, journey_id=journey_id)
        t = result.totals
        out.print(
            f"{journey_id}: {t.entered} entered, {t.active} active, {t.completed} completed, "
            f"{t.exited} exited, {t.converted} converted"
        )
        if result.variants:
            table = Table("variant", "entered", "converted", "rate")
            for name, g in sorted(result.variants.items()):
                rate = f"{g.converted / g.entered:.1%}" if g.entered else "-"
                table.add_row(name, str(g.entered), str(g.converted), rate)
            out.print(table)
        table = Table("node", "kind", "executed", "waiting", "outcomes")
        for node_id, n in result.nodes.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(n.outcomes.items()))
            table.add_row(node_id, n.kind, str(n.executed), str(n.waiting), outcomes)
        out.print(table)

    _run(work)
