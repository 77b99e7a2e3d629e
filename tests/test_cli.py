"""The CLI against a real database: keys printed alone on the last line, and usable (this one
through ``python -m omnicx.cli`` in a process of its own, the entry point users run)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from omnicx.db import Database
from tests.cli import omnicx as in_process


def omnicx(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMNICX_DATABASE_URL": database_url, "OMNICX_SECRET_KEY": "cli-test"}
    return subprocess.run(
        [sys.executable, "-m", "omnicx.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_source_and_token_create_print_usable_secrets(
    client: httpx.AsyncClient, db: Database, database_url: str
) -> None:
    made = omnicx(database_url, "source", "create", "pos-oslo", "--kind", "pos")
    assert made.returncode == 0, made.stderr
    write_key = made.stdout.strip().splitlines()[-1]
    made = omnicx(database_url, "token", "create", "dana", "--role", "agent")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]

    response = await client.post(
        "/v1/track", json={"userId": "u", "event": "Till Receipt"}, auth=(write_key, "")
    )
    assert response.status_code == 200, response.text
    response = await client.get(
        "/api/profiles/user_id:u/events", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["source"] == "pos-oslo"
    assert response.json()["items"][0]["channel"] == "pos"


async def test_bad_cli_input_is_refused(database_url: str, db: Database) -> None:
    bad_role = await in_process(database_url, "token", "create", "x", "--role", "janitor")
    assert bad_role.exit_code != 0
    refused = await in_process(database_url, "token", "create", "x", "--role", "store_associate")
    assert refused.exit_code != 0
    assert "--store" in refused.stderr
    bad_kind = await in_process(database_url, "source", "create", "x", "--kind", "fax")
    assert bad_kind.exit_code != 0
