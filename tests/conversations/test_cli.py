"""``omnicx conversations``: the FAQ imported from a file answers in the chat, agents get
conversations by round robin, the list shows them; a bad file is refused."""

from __future__ import annotations

from pathlib import Path

import httpx

from omnicx.db import Database
from tests.cli import omnicx
from tests.conversations.conftest import widget


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
