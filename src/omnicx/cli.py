"""``omnicx``: serve, migrate, and create sources and tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import migrate
from omnicx.analytics import cli as analytics_cli
from omnicx.auth import cli as users_cli
from omnicx.auth.service import Role, SourceKind, create_source, create_token
from omnicx.conversations import cli as conversations_cli
from omnicx.db import Database
from omnicx.demo import cli as demo_cli
from omnicx.journeys import cli as journeys_cli
from omnicx.messaging.cli import channels_app
from omnicx.segments import cli as segments_cli
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
app.add_typer(channels_app, name="channels")
import_app = typer.Typer(help="CSV imports (safe to run again).", no_args_is_help=True)
app.add_typer(segments_cli.app, name="segments")
app.add_typer(journeys_cli.app, name="journeys")
app.add_typer(import_app, name="import")
app.add_typer(analytics_cli.app, name="analytics")
app.add_typer(conversations_cli.app, name="conversations")
app.add_typer(users_cli.app, name="user")
app.command("demo")(demo_cli.demo)
err = Console(stderr=True)
T = TypeVar("T")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (OMNICX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (OMNICX_PORT).")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes on this port (more than 1: PostgreSQL).")
    ] = 1,
) -> None:
    """Serve the API (and apply pending migrations first)."""
    import uvicorn

    from omnicx.ops import logs
    from omnicx.ops import serve as ops_serve

    settings = get_settings()
    try:
        ops_serve.check_workers(settings, workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--workers") from exc
    if migrate_first:
        migrate.upgrade(settings)
    logs.configure(settings)
    made = ops_serve.multiprocess_metrics_dir() if workers > 1 else None
    try:
        uvicorn.run(
            "omnicx.ops.serve:create",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
            # A process imports the whole app (numpy, scipy…) before it can answer the
            # supervisor's health check; on a busy machine that takes longer than uvicorn's 5 s.
            timeout_worker_healthcheck=120,
        )
    finally:
        if made:
            ops_serve.remove_metrics_dir(made)


@app.command("worker")
def run_worker() -> None:
    """Run the background worker (due timers) until interrupted; run as many as you like."""
    import signal

    from omnicx import heap, worker
    from omnicx.app import build_hooks
    from omnicx.ops import logs

    settings = get_settings()
    if settings.worker_metrics_port:
        # Sends, provider errors and timer lateness are counted where the work runs: here.
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, settings.worker_metrics_host)

    async def main() -> None:
        db = Database(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        hooks = build_hooks(settings)
        heap.settle()
        try:
            await worker.run(db, hooks, stop)
        finally:
            await db.dispose()

    logs.configure(settings)
    asyncio.run(main())


def _run_import(kind: str, path: Path) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from omnicx.app import build_hooks
    from omnicx.commerce import imports

    async def main(progress: Progress) -> imports.ImportReport:
        settings = get_settings()
        db = Database(settings)
        task = progress.add_task(f"{kind} from {path.name}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            if kind == "products":
                return await imports.import_products(db, path, advance)
            return await imports.import_orders(db, build_hooks(settings), path, advance)
        finally:
            await db.dispose()

    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file", param_hint="FILE")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err) as progress:
        report = asyncio.run(main(progress))
    for line in report.errors[:50]:
        err.print(f"[yellow]skipped[/yellow] {line}")
    err.print(
        f"{report.rows} rows: {report.stored} stored, {report.unchanged} already there, "
        f"{len(report.errors)} skipped"
    )
    if report.errors:
        raise typer.Exit(1)


@import_app.command("products")
def import_products(path: Annotated[Path, typer.Argument(metavar="FILE.csv")]) -> None:
    """Upsert the catalogue from a CSV (id, sku, name, price, currency, category, …)."""
    _run_import("products", path)


@import_app.command("orders")
def import_orders(path: Annotated[Path, typer.Argument(metavar="FILE.csv")]) -> None:
    """Import past orders from a CSV, one line item per row (order_id, placed_at, user_id…)."""
    _run_import("orders", path)


@app.command("export")
def export_installation(path: Annotated[Path, typer.Argument(metavar="FILE.tar.gz")]) -> None:
    """Write the whole installation (every table) to FILE, to import elsewhere."""
    from omnicx.ops import transfer

    async def main() -> dict[str, int]:
        db = Database(get_settings())
        try:
            return await transfer.export(db, path)
        finally:
            await db.dispose()

    counts = asyncio.run(main())
    err.print(f"exported {sum(counts.values())} rows from {len(counts)} tables to {path}")


@import_app.command("installation")
def import_installation(path: Annotated[Path, typer.Argument(metavar="FILE.tar.gz")]) -> None:
    """Restore an `omnicx export` file into this empty, migrated database."""
    from omnicx.ops import transfer

    async def main() -> dict[str, int]:
        db = Database(get_settings())
        try:
            return await transfer.import_(db, path)
        finally:
            await db.dispose()

    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file", param_hint="FILE")
    try:
        counts = asyncio.run(main())
    except transfer.TransferError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    err.print(f"imported {sum(counts.values())} rows into {len(counts)} tables")


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply migrations up to REVISION (default: every head)."""
    migrate.upgrade(get_settings(), revision)
    err.print(f"[green]database at {revision}[/green]")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message")],
    rev_id: Annotated[str | None, typer.Option(help="Revision id, e.g. 0004.")] = None,
    head: Annotated[str, typer.Option(help="The revision it follows.")] = "head",
) -> None:
    """Autogenerate a migration from the models (for developers)."""
    migrate.revision(get_settings(), message, rev_id=rev_id, head=head)


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
