"""The ``omnicx`` command run in this process against a test database.

A subprocess per command costs seconds of imports, so the CLI tests call the Typer app
directly; ``tests/test_cli.py`` keeps one run through ``python -m omnicx.cli`` to prove the
entry point itself. A command that crashes (anything but a clean exit) fails the test rather
than passing for a refusal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner, Result

from omnicx.cli import app
from omnicx.settings import get_settings
from tests.conftest import SECRET


def invoke(
    database_url: str,
    *args: str | Path,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run one command; its settings are read afresh for this database (and ``env``)."""
    get_settings.cache_clear()
    try:
        variables = {
            "OMNICX_DATABASE_URL": database_url,
            "OMNICX_SECRET_KEY": SECRET,
            "OMNICX_ENV": "test",
            **(env or {}),
        }
        result = CliRunner().invoke(app, [str(a) for a in args], env=variables, input=input)
    finally:
        get_settings.cache_clear()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


async def omnicx(
    database_url: str,
    *args: str | Path,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """:func:`invoke` from an async test, on a thread of its own: each command runs its own
    event loop."""
    return await asyncio.to_thread(invoke, database_url, *args, input=input, env=env)
