"""Scale-out on PostgreSQL: ``omnicx serve --workers 2`` (two API processes on one port) and two
``omnicx worker`` processes run a journey for many customers. The load is shared (each API
process answered ingest requests, each worker handled timers, by their JSON logs) and nothing
is done twice (each customer has one run, one step per node, one message). Midway one worker is
stopped with SIGTERM: it finishes its pass and exits 0, and the other carries on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from omnicx import timers
from omnicx.db import Database, utcnow
from omnicx.journeys.models import JourneyRun, JourneyStep
from omnicx.messaging.models import Message
from tests.conftest import SECRET
from tests.journeys.factories import journey, template
from tests.live_server import free_port

CUSTOMERS = int(os.environ.get("OMNICX_TEST_SCALE_CUSTOMERS", "1000"))
BATCH = 100
CLIENTS = 6
DEADLINE = 900.0  # bounds a broken run on a busy machine; nothing asserts on time

FLOW = {
    "entry": {"event": "Scale Started"},
    "nodes": [
        {"id": "pause", "type": "wait", "duration": "1s"},
        {"id": "hello", "type": "send", "message": "scale-hello", "channel": "inapp"},
    ],
}


class Process:
    def __init__(self, args: list[str], env: dict[str, str], cwd: str, name: str) -> None:
        self.log_path = Path(cwd) / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "omnicx.cli", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def terminate(self, timeout: float = 60.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return -9
        finally:
            self._log.close()

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
        return out


async def _state(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        done = await session.scalar(
            select(func.count()).select_from(JourneyRun).where(JourneyRun.status == "completed")
        )
        sent = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status.in_(("sent", "delivered")))
        )
    return done or 0, sent or 0


async def _diagnose(db: Database, cwd: str) -> str:
    async with db.session() as session:
        left = (
            await session.execute(
                select(timers.Timer.kind, func.count(), func.max(timers.Timer.last_error)).group_by(
                    timers.Timer.kind
                )
            )
        ).all()
    tails = {p.name: p.read_text()[-1500:] for p in Path(cwd).glob("*.log")}
    return f"timers {left}, logs {tails}"


async def _wait_healthy(url: str, server: Process) -> None:
    deadline = time.monotonic() + 180  # two processes import the app at once on a busy machine
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() < deadline:
            assert server.popen.poll() is None, server.log_path.read_text()[-3000:]
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("API processes never became ready")


async def _ingest(url: str, write_key: str) -> None:
    now = utcnow().isoformat()
    batches = [
        [
            {"type": "track", "userId": f"s{i}", "event": "Scale Started", "timestamp": now}
            for i in range(start, min(start + BATCH, CUSTOMERS))
        ]
        for start in range(0, CUSTOMERS, BATCH)
    ]

    async def one_client(mine: list[list[dict[str, Any]]]) -> None:
        for batch in mine:
            # A new connection per request, so the kernel spreads them over both processes.
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                response = await client.post(
                    "/v1/batch", json={"batch": batch}, auth=(write_key, "")
                )
                assert response.status_code == 200, response.text

    await asyncio.gather(*(one_client(batches[i::CLIENTS]) for i in range(CLIENTS)))


@pytest.mark.slow
async def test_two_api_processes_and_two_workers_share_a_journey_load(
    client: httpx.AsyncClient,
    write_key: str,
    admin_headers: dict[str, str],
    db: Database,
    database_url: str,
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("several processes share one database on PostgreSQL")
    await template(client, admin_headers, "scale-hello")
    await journey(client, admin_headers, "scale", FLOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNICX_", "PROMETHEUS_"))}
    env.update(
        OMNICX_DATABASE_URL=database_url,
        OMNICX_SECRET_KEY=SECRET,
        OMNICX_ENV="test",
        OMNICX_LOG_FORMAT="json",
        OMNICX_WORKER_POLL_SECONDS="0.05",
        OMNICX_JOURNEY_CACHE_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_env = {**env, "OMNICX_EMBEDDED_WORKER": "false"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as cwd:
        api = Process(
            ["serve", "--workers", "2", "--no-migrate", "--port", str(port)], api_env, cwd, "api"
        )
        workers = [Process(["worker"], env, cwd, f"worker{i}") for i in range(2)]
        stopped: Process | None = None
        try:
            await _wait_healthy(url, api)
            await _ingest(url, write_key)
            while (state := await _state(db)) != (CUSTOMERS, CUSTOMERS):
                if time.monotonic() - started > DEADLINE:
                    raise AssertionError(f"stuck at {state}: {await _diagnose(db, cwd)}")
                if stopped is None and state[0] >= CUSTOMERS // 3:
                    stopped = workers[0]
                    assert stopped.terminate() == 0, stopped.log_path.read_text()[-3000:]
                    workers[0] = Process(["worker"], env, cwd, "worker0b")
                await asyncio.sleep(0.2)
        finally:
            codes = [p.terminate() for p in (api, *workers)]
        # SIGTERM ends a running process cleanly (0); one still importing the app when the
        # load is done has no handler yet and dies of the signal, which is right too.
        assert codes[0] == 0, codes
        for process, code in zip(workers, codes[1:], strict=True):
            started_up = any(
                line.get("message", "").startswith("worker started") for line in process.lines()
            )
            assert code == 0 or (code == -signal.SIGTERM and not started_up), (code, started_up)
        api_lines = api.lines()
        assert stopped is not None, "the run ended before a worker could be stopped"
        # The two workers that ran side by side: the one stopped midway, and the other.
        worker_lines = [stopped.lines(), workers[1].lines()]

    # The load was shared: both API processes answered ingest requests...
    served = Counter(
        line["pid"]
        for line in api_lines
        if line.get("logger") == "omnicx.access" and "/v1/batch" in line["message"]
    )
    assert sum(served.values()) == len(range(0, CUSTOMERS, BATCH))
    assert len(served) == 2, served
    # ...and the first two workers both handled timers before one was stopped.
    handled = [sum(line.get("handled", 0) for line in lines) for lines in worker_lines]
    assert handled[0] > 0 and handled[1] > 0, handled
    assert any(line["message"] == "worker stopped" for line in worker_lines[0])

    # Nothing was done twice (or left undone).
    async with db.session() as session:
        runs = (await session.execute(select(JourneyRun.id, JourneyRun.profile_id))).all()
        steps = (await session.execute(select(JourneyStep.run_id, JourneyStep.node))).all()
        sent = (await session.execute(select(Message.profile_id, Message.status))).all()
        left = await session.scalar(
            select(func.count())
            .select_from(timers.Timer)
            .where(timers.Timer.kind.like("journey.%"))
        )
    assert len(runs) == CUSTOMERS and len({r.profile_id for r in runs}) == CUSTOMERS
    assert Counter(Counter((s.run_id, s.node) for s in steps).values()) == {1: len(steps)}
    assert set(Counter(s.run_id for s in steps).values()) == {len(FLOW["nodes"])}
    assert len(sent) == CUSTOMERS and len({m.profile_id for m in sent}) == CUSTOMERS
    assert {m.status for m in sent} <= {"sent", "delivered"}
    assert left == 0
