"""``omnicx segments list|preview|recompute|load``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database, utcnow
from omnicx.errors import ApiError
from omnicx.segments import service
from omnicx.segments.engine import Engine
from omnicx.segments.models import Segment
from omnicx.segments.schemas import SegmentCreate
from omnicx.settings import get_settings

app = typer.Typer(help="Segments: list, preview, recompute, load.", no_args_is_help=True)
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


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


@app.command("list")
def list_segments() -> None:
    """Every segment and its member count."""

    async def work(db: Database) -> None:
        async with db.session() as session:
            rows = await service.list_all(session)
        table = Table("id", "name", "members", "computed")
        for s in rows:
            table.add_row(s.id, s.name, str(s.members), str(s.computed_at or "pending"))
        out.print(table)

    _run(work)


@app.command()
def preview(path: Annotated[Path, typer.Argument(help="A definition (YAML or JSON).")]) -> None:
    """Count who a definition matches now."""
    data = _read(path)
    definition = data.get("definition", data) if isinstance(data, dict) else data

    async def work(db: Database) -> None:
        async with db.session() as session:
            result = await service.preview(session, definition=definition, sample=5, now=utcnow())
        out.print(f"{result.count} profiles; e.g. {', '.join(result.sample) or '-'}")

    _run(work)


@app.command()
def recompute(segment_id: Annotated[str | None, typer.Argument()] = None) -> None:
    """Recompute one segment (or all) from scratch and apply the difference."""

    async def work(db: Database) -> None:
        from omnicx.app import build_hooks

        engine = Engine(build_hooks(db.settings))
        async with db.session() as session:
            ids = (
                [segment_id]
                if segment_id
                else list(
                    (await session.execute(select(Segment.id).order_by(Segment.id))).scalars()
                )
            )
        for sid in ids:
            entered, exited = await engine.recompute(db, sid, utcnow())
            out.print(f"{sid}: {entered} entered, {exited} exited")

    _run(work)


@app.command()
def load(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="YAML files; default: starter set")
    ] = None,
) -> None:
    """Create or update segments from YAML files (the shipped starter set by default)."""
    if paths:
        docs = [(str(p), _read(p)) for p in paths]
    else:
        starter = resources.files("omnicx.segments") / "starter"
        docs = [
            (f.name, yaml.safe_load(f.read_text(encoding="utf-8")))
            for f in sorted(starter.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".yaml")
        ]
    try:
        items = [SegmentCreate.model_validate(doc) for _, doc in docs]
    except ValidationError as exc:
        err.print(f"[red]invalid segment file[/red]: {exc}")
        raise typer.Exit(1) from exc

    async def work(db: Database) -> None:
        async def save(session: AsyncSession) -> None:
            # Built-on segments first, so references resolve.
            pending = list(items)
            while pending:
                progressed = False
                for item in list(pending):
                    try:
                        await service.put(session, data=item)
                    except ApiError as exc:
                        if exc.code != "invalid_definition" or "unknown segment" not in exc.message:
                            raise
                        continue
                    pending.remove(item)
                    progressed = True
                if not progressed:
                    await service.put(session, data=pending[0])  # raises the real error

        await db.transaction(save)
        out.print(f"loaded {len(items)} segments: {', '.join(i.id for i in items)}")

    _run(work)
