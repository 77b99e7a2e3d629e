"""``omnicx``: serve, migrate, and create sources and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import migrate
from omnicx.auth.service import Role, SourceKind, create_source, create_token
from omnicx.db import Database
from omnicx.settings import get_settings

app = typer.Typer(
    help="OmniCX: one continuous conversation with each customer.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
source_app = typer.Typer(help="Event sources and their write keys.", no_args_is_help=True)
token_app = typer.Typer(help="Staff API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(source_app, name="source")
app.add_typer(token_app, name="token")
err = Console(stderr=True)
T = TypeVar("T")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (OMNICX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (OMNICX_PORT).")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Serve the API (and apply pending migrations first)."""
    import uvicorn

    settings = get_settings()
    if migrate_first:
        migrate.upgrade(settings)
    uvicorn.run(
        "omnicx.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(get_settings(), revision)
    err.print(f"[green]database at {revision}[/green]")


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """Autogenerate a migration from the models (for developers)."""
    migrate.revision(get_settings(), message)


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(get_settings())
        try:
            return await db.transaction(work)
        finally:
            await db.dispose()

    return asyncio.run(run())


@source_app.command("create")
def source_create(
    name: str,
    kind: Annotated[
        SourceKind, typer.Option(help="Where its events come from.")
    ] = SourceKind.server,
) -> None:
    """Create a source; prints its write key alone on the last line."""

    async def work(session: AsyncSession) -> str:
        _source, key = await create_source(session, name=name, kind=kind)
        return key

    key = _in_transaction(work)
    err.print(f"source [bold]{name}[/bold] ({kind.value}) created; its write key:")
    print(key)


@token_app.command("create")
def token_create(
    name: str,
    role: Annotated[Role, typer.Option(help="What the token may do.")],
    store: Annotated[str | None, typer.Option(help="Store id (store associates).")] = None,
) -> None:
    """Create a staff API token; prints it alone on the last line."""

    async def work(session: AsyncSession) -> str:
        _row, token = await create_token(session, name=name, role=role, store_id=store)
        return token

    if role is Role.store_associate and not store:
        raise typer.BadParameter("a store associate token needs --store", param_hint="--store")
    token = _in_transaction(work)
    err.print(f"token [bold]{name}[/bold] ({role.value}) created:")
    print(token)


if __name__ == "__main__":
    app()
