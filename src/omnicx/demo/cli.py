"""``omnicx demo``: seed the demo brand and play the story (see :mod:`omnicx.demo`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from omnicx import migrate
from omnicx.demo import DEFAULT_PASSWORD, STAFF, has_staff, run
from omnicx.settings import get_settings

err = Console(stderr=True)


def demo(
    customers: Annotated[int, typer.Option(min=10, max=200_000, help="Customers to make.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same brand.")] = 7,
    password: Annotated[
        str, typer.Option(help="Password of the demo staff logins.")
    ] = DEFAULT_PASSWORD,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when staff users already exist.")
    ] = False,
) -> None:
    """Seed a demo brand with customers, segments and journeys, and play the story."""
    from omnicx.app import build_hooks
    from omnicx.db import Database

    settings = get_settings()
    if settings.env == "production":
        err.print("[red]omnicx demo refuses to run with OMNICX_ENV=production[/red]")
        raise typer.Exit(1)
    if len(password) < 8:
        raise typer.BadParameter("at least 8 characters", param_hint="--password")
    migrate.upgrade(settings)

    async def main(progress: Progress) -> None:
        db = Database(settings)
        try:
            if if_empty and await has_staff(db):
                err.print("demo: staff users exist already; nothing to do")
                return
            task = progress.add_task("events", total=None)
            report = await run(
                db,
                build_hooks(settings),
                customers=customers,
                rng_seed=seed,
                password=password,
                say=progress.console.print,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        finally:
            await db.dispose()
        url = f"http://{settings.host}:{settings.port}/console"
        progress.console.print(
            f"\n[bold green]Demo ready[/bold green] in {report.seconds:.1f}s: "
            f"{report.customers:,} customers, {report.events:,} events.\n"
            f"Open [bold]{url}[/bold] (after `omnicx serve`) and log in with password "
            f"[bold]{password}[/bold] as:"
        )
        for email, _name, role, store in STAFF:
            where = f" ({store})" if store else ""
            progress.console.print(f"  {role.value:16} {email}{where}")
        if report.pickup_code:
            progress.console.print(
                f"\nAs store@demo.omnicx, open Store, type Ana's code [bold]{report.pickup_code}"
                f"[/bold] and hand over her jacket. As an agent or admin, search Customers for "
                f"ana.berg@example.com to see her whole story."
            )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        asyncio.run(main(progress))
