"""Console fixtures: a small demo brand on each backend, a real server, real headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (its own browser download
cannot work offline); ``make test`` installs it where missing, and without it the browser tests
are skipped with that reason. Screenshots of every main page go to ``artifacts/screenshots/``
(git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omnicx.app import build_hooks
from omnicx.db import Database
from omnicx.demo import DEFAULT_PASSWORD, run
from omnicx.settings import Settings
from tests.conftest import SECRET, truncate
from tests.live_server import LiveServer

CHROMIUM = Path(os.environ.get("OMNICX_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass
class Demo:
    url: str
    backend: str
    pickup_code: str


def seed_demo(database_url: str, customers: int = 40) -> str:
    """Empty the database and seed a small demo brand; returns Ana's pickup code."""

    async def main() -> str:
        settings = Settings(database_url=database_url, env="test", secret_key=SECRET)
        db = Database(settings)
        try:
            await truncate(db)
            report = await run(
                db,
                build_hooks(settings),
                customers=customers,
                rng_seed=3,
                password=DEFAULT_PASSWORD,
                say=lambda _text: None,
            )
        finally:
            await db.dispose()
        assert report.pickup_code
        return report.pickup_code

    return asyncio.run(main())


@pytest.fixture(scope="module")
def demo(database_url: str) -> Iterator[Demo]:
    """A seeded database served by a real uvicorn process, for the module's tests."""
    code = seed_demo(database_url)
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    # A generous start-up: on a loaded 2-core machine the imports alone can take half a minute.
    with LiveServer(database_url, secret_key=SECRET, startup_timeout=120) as server:
        yield Demo(server.url, backend, code)
