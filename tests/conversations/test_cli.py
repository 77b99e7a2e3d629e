"""``omnicx conversations``: the FAQ imported from a file answers in the chat, agents get
conversations by round robin, the list shows them; a bad file is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from omnicx.cli import app as cli_app
from omnicx.db import Database
from omnicx.settings import get_settings
from tests.conftest import SECRET
from tests.conversations.conftest import widget


def _invoke(database_url: str, *args: str) -> Result:
    get_settings.cache_clear()  # the command reads the settings of this database
    try:
        env = {"OMNICX_DATABASE_URL": database_url, "OMNICX_SECRET_KEY": SECRET}
        return CliRunner().invoke(cli_app, list(args), env=env)
    finally:
        get_settings.cache_clear()


async def omnicx(database_url: str, *args: str) -> Result:
    """The CLI in this process (a subprocess per command costs seconds of imports), on a
    thread of its own since each command runs its own event loop."""
    return await asyncio.to_thread(_invoke, database_url, *args)


async def test_faq_import_agents_and_list(
    client: httpx.AsyncClient, db: Database, database_url: str, web_key: str, tmp_path: Path
) -> None:
    faq = tmp_path / "faq.json"
    faq.write_text(
        '[{"id": "hours", "questions": ["When are you open?"], "answer": "9 to 6.", '
        '"topic": "opening hours"}]'
    )
    imported = await omnicx(database_url, "conversations", "faq-import", str(faq))
    assert imported.exit_code == 0, imported.output
    made = await omnicx(database_url, "conversations", "agent", "dana", "--queue", "support")
    assert made.exit_code == 0, made.output

    visitor = widget(web_key, anonymous_id="cli-visitor")
    items = (
        await client.post("/c/messages", json={"body": "when are you open?"}, headers=visitor)
    ).json()["items"]
    assert items[-1]["body"] == "9 to 6."
    await client.post("/c/messages", json={"body": "a human please"}, headers=visitor)

    listed = await omnicx(database_url, "conversations", "list", "--status", "assigned")
    assert listed.exit_code == 0, listed.output
    assert "dana" in listed.stdout and "opening hours" in listed.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: x\n  questions: [a?b]]\n")
    refused = await omnicx(database_url, "conversations", "faq-import", str(broken))
    assert refused.exit_code == 1 and "invalid FAQ file" in refused.output
