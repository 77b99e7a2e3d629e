"""``omnicx journeys load|list|stats`` against a real database: the shipped examples load as
drafts with their templates, publish once their segment exists, and loading again changes
nothing."""

from __future__ import annotations

from pathlib import Path

from omnicx.db import Database
from tests.cli import omnicx
from tests.helpers import row_counts


async def test_load_list_publish_and_stats(database_url: str, db: Database, tmp_path: Path) -> None:
    loaded = await omnicx(database_url, "journeys", "load")
    assert loaded.exit_code == 0, loaded.stderr
    assert "abandoned-cart: draft saved; templates created: abandoned-cart-offer" in loaded.stdout
    listed = await omnicx(database_url, "journeys", "list")
    assert listed.exit_code == 0, listed.stderr
    for journey in ("abandoned-cart", "click-and-collect", "post-purchase-csat", "win-back"):
        assert journey in listed.stdout
    assert listed.stdout.count("draft") == 4

    # Win-back enters from the lapsed-customers segment: publishing refuses until it exists,
    # and the refusal publishes nothing.
    before = await row_counts(db)
    refused = await omnicx(database_url, "journeys", "load", "--publish")
    assert refused.exit_code == 1
    assert "unknown_segment" in refused.stderr and "lapsed-customers" in refused.stderr
    assert (await omnicx(database_url, "journeys", "stats", "nothing")).exit_code == 1
    assert await row_counts(db) == before
    assert (await omnicx(database_url, "segments", "load")).exit_code == 0
    published = await omnicx(database_url, "journeys", "load", "--publish")
    assert published.exit_code == 0, published.stderr
    assert published.stdout.count("published v1") == 4
    again = await omnicx(database_url, "journeys", "load", "--publish")
    assert again.exit_code == 0 and "published" not in again.stdout
    stats = await omnicx(database_url, "journeys", "stats", "win-back")
    assert stats.exit_code == 0, stats.stderr
    assert "win-back: 0 entered" in stats.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nname: Bad\ndefinition:\n  entry: {event: X}\n  nodes: []\n")
    refused = await omnicx(database_url, "journeys", "load", str(bad))
    assert refused.exit_code == 1
    said = "".join(refused.stderr.split())  # Rich wraps long paths at the terminal's width
    assert "bad.yaml:nodes:needsanon-emptylist" in said
