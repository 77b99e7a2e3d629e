"""Schemathesis against the OpenAPI schema of every route: no 5xx, and every documented
response matches its schema.

A real server (uvicorn, SQLite) with an admin token; ``st run`` generates requests for every
operation (coverage, fuzzing and stateful phases), a few examples each, within a time budget
(``OMNICX_TEST_FUZZ_SECONDS``, default 75; ``OMNICX_TEST_FUZZ_EXAMPLES``, default 3). Routes
that need other credentials (write keys on ``/v1``, customers' in-app and widget tokens) are
fuzzed too and must answer 401 or 4xx, never 5xx. ``OMNICX_TEST_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from omnicx import migrate
from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.settings import Settings
from tests.conftest import SECRET, new_token
from tests.live_server import LiveServer

SECONDS = os.environ.get("OMNICX_TEST_FUZZ_SECONDS", "75")
EXAMPLES = os.environ.get("OMNICX_TEST_FUZZ_EXAMPLES", "3")


async def _admin_token(settings: Settings) -> str:
    db = Database(settings)
    try:
        return await new_token(db, Role.admin)
    finally:
        await db.dispose()


@pytest.mark.slow
def test_every_route_survives_schemathesis(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    settings = Settings(database_url=url, env="test", secret_key=SECRET)
    migrate.upgrade(settings)
    token = asyncio.run(_admin_token(settings))
    seed = os.environ.get("OMNICX_TEST_SEED") or str(random.randrange(2**31))
    env = {"OMNICX_EMBEDDED_WORKER": "false", "OMNICX_RATE_LIMIT_API": "0"}
    with LiveServer(url, secret_key=SECRET, env=env, startup_timeout=120) as server:
        command = [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            EXAMPLES,
            "--max-time",
            SECONDS,
            "--seed",
            seed,
            "--no-shrink",
            "--warnings",
            "off",
            "--request-timeout",
            "30",
        ]
        run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        server_errors = [
            line for line in server.log_tail(4000).splitlines() if "Exception in ASGI" in line
        ]
    report = run.stdout[-8000:] + run.stderr[-2000:]
    assert run.returncode == 0, f"seed={seed}\n{report}\nserver errors: {server_errors[:3]}"
    assert not server_errors, f"seed={seed}: {server_errors[:3]}"
