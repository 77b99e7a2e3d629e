"""``omnicx user``: staff users who log in to the console."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth import users
from omnicx.auth.service import Role, create_token
from omnicx.db import Database
from omnicx.settings import get_settings

app = typer.Typer(help="Staff users (console logins).", no_args_is_help=True)
err = Console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        db = Database(get_settings())
        try:
            return await db.transaction(work)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except users.UserError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("create")
def create(
    email: str,
    role: Annotated[Role, typer.Option(help="What the user may do.")],
    store: Annotated[str | None, typer.Option(help="Store id (store associates).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a staff user; asks for the password (or reads it with --password-stdin)."""
    if role is Role.store_associate and not store:
        raise typer.BadParameter("a store associate needs --store", param_hint="--store")
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> str:
        user = await users.create(
            session, email=email, password=password, role=role, name=name, store_id=store
        )
        return user.email

    created = _run(work)
    err.print(f"user [bold]{created}[/bold] ({role.value}) created")


@app.command("list")
def list_users() -> None:
    """Every staff user (deleted ones are not shown)."""

    async def work(session: AsyncSession) -> list[tuple[str, str, str, str]]:
        return [(u.email, u.name, u.role, u.store_id or "") for u in await users.list_all(session)]

    table = Table("email", "name", "role", "store")
    for row in _run(work):
        table.add_row(*row)
    Console().print(table)


@app.command("delete")
def delete(email: str) -> None:
    """Delete a user: no more logins, and the user's API tokens are refused."""

    async def work(session: AsyncSession) -> bool:
        user = await users.get_by_email(session, email=email)
        if user is None:
            return False
        await users.delete(session, user=user)
        return True

    if not _run(work):
        err.print(f"[red]no user {email!r}[/red]")
        raise typer.Exit(1)
    err.print(f"user [bold]{email}[/bold] deleted")


@app.command("token")
def token(email: str) -> None:
    """Create an API token acting for the user (its role and store); prints it on the last line."""

    async def work(session: AsyncSession) -> str | None:
        user = await users.get_by_email(session, email=email)
        if user is None:
            return None
        _row, secret = await create_token(
            session,
            name=user.email,
            role=Role(user.role),
            store_id=user.store_id,
            user_id=user.id,
        )
        return secret

    secret = _run(work)
    if secret is None:
        err.print(f"[red]no user {email!r}[/red]")
        raise typer.Exit(1)
    err.print(f"token for [bold]{email}[/bold] created:")
    print(secret)
