"""Scale-out on PostgreSQL: ingest events/s and journey steps/s with 1 and with 2 processes.

For each N in ``--processes`` (default 1 and 2) the benchmark

1. creates ``omnicx_bench_scale_<random>`` (dropped at the end), migrates it, and through the
   API creates an in-app template and the journey ``scale``: entry ``Scale Started``, send the
   message (transactional), exit;
2. **ingest**: starts ``omnicx serve --workers N`` (embedded worker off) and posts one
   ``Scale Started`` event for each of ``--customers`` new customers in ``/v1/batch`` requests
   of 100 from ``--clients`` concurrent clients, a new connection each (spread over the N
   processes); events/s = events ÷ seconds from the first request to the last answer;
3. **journeys**: stops the API, starts N ``omnicx worker`` processes, and times until every
   customer's run has completed and the message is delivered to the in-app inbox (the real
   worker: timers, journey engine, delivery loop); steps/s = journey steps ÷ seconds.

The figure of interest is the ratio of N=2 to N=1 on the same machine in the same run: on 2
cores shared with PostgreSQL and the load generator, it shows what coordination through the
database costs, not what a second machine would add. The load average is printed with each
figure: the machine is shared.

Run: ``.venv/bin/python bench/scale.py [--customers N] [--processes 1 2] [--clients C]``;
``OMNICX_BENCH_POSTGRES_URL`` names the server (default ``postgresql://postgres@127.0.0.1/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx import migrate
from omnicx.app import create_app
from omnicx.auth.service import Role, SourceKind, create_source, create_token
from omnicx.db import Database
from omnicx.journeys.models import JourneyRun, JourneyStep
from omnicx.messaging.models import Message
from omnicx.settings import Settings

SERVER = os.environ.get("OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/postgres")
REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"
FLOW = {
    "entry": {"event": "Scale Started"},
    "nodes": [{"id": "hello", "type": "send", "message": "scale-hello", "channel": "inapp"}],
}
TEMPLATE = {"category": "transactional", "variants": {"inapp": {"title": "Hi", "body": "Hello"}}}


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNICX_", "PROMETHEUS_"))}
    env.update(
        OMNICX_DATABASE_URL=url,
        OMNICX_SECRET_KEY=SECRET,
        OMNICX_LOG_LEVEL="warning",
        OMNICX_WORKER_POLL_SECONDS="0.05",
        OMNICX_EMBEDDED_WORKER="false",
        OMNICX_RATE_LIMIT_INGEST="0",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    )
    return env


def start(args: list[str], env: dict[str, str], cwd: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "omnicx.cli", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def setup(db: Database) -> str:
    async def work(session: AsyncSession) -> tuple[str, str]:
        _source, key = await create_source(session, name="bench", kind=SourceKind.server)
        _row, token = await create_token(session, name="bench", role=Role.admin)
        return key, token

    key, token = await db.transaction(work)
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(db.settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        put = await client.put("/api/templates/scale-hello", json=TEMPLATE, headers=headers)
        assert put.status_code in (200, 201), put.text
        body = {"id": "scale", "name": "Scale", "definition": FLOW}
        made = await client.post("/api/journeys", json=body, headers=headers)
        assert made.status_code == 201, made.text
        published = await client.post("/api/journeys/scale/publish", json={}, headers=headers)
        assert published.status_code == 200, published.text
    return key


async def ingest(url: str, key: str, customers: int, clients: int) -> float:
    batches = [
        [
            {"type": "track", "userId": f"c{i}", "event": "Scale Started"}
            for i in range(start, min(start + 100, customers))
        ]
        for start in range(0, customers, 100)
    ]

    async def one(mine: list[list[dict[str, Any]]]) -> None:
        for batch in mine:
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                response = await client.post("/v1/batch", json={"batch": batch}, auth=(key, ""))
                assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(one(batches[i::clients]) for i in range(clients)))
    return customers / (time.perf_counter() - started)


async def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("omnicx serve exited")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("omnicx serve never became ready")


async def progress(db: Database) -> tuple[int, int, int]:
    async with db.session() as session:
        done = await session.scalar(
            select(func.count()).select_from(JourneyRun).where(JourneyRun.status == "completed")
        )
        sent = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status.in_(("sent", "delivered")))
        )
        steps = await session.scalar(select(func.count()).select_from(JourneyStep))
    return done or 0, sent or 0, steps or 0


async def run(processes: int, customers: int, clients: int) -> dict[str, float]:
    name = f"omnicx_bench_scale_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    url = f"{SERVER.rsplit('/', 1)[0]}/{name}"
    settings = Settings(database_url=url, env="test", secret_key=SECRET, embedded_worker=False)
    db = Database(settings)
    env = env_for(url)
    try:
        await asyncio.to_thread(migrate.upgrade, settings)
        key = await setup(db)
        with tempfile.TemporaryDirectory() as cwd:
            port = free_port()
            api = start(
                ["serve", "--no-migrate", "--workers", str(processes), "--port", str(port)],
                env,
                cwd,
            )
            try:
                await wait_ready(f"http://127.0.0.1:{port}", api)
                events = await ingest(f"http://127.0.0.1:{port}", key, customers, clients)
                ingest_load = load()
            finally:
                stop(api)
            workers = [start(["worker"], env, cwd) for _ in range(processes)]
            try:
                started = time.perf_counter()
                while (state := await progress(db))[:2] != (customers, customers):
                    if time.perf_counter() - started > 1800:
                        raise RuntimeError(f"journeys stuck at {state}")
                    await asyncio.sleep(0.2)
                elapsed = time.perf_counter() - started
            finally:
                for worker in workers:
                    stop(worker)
        steps = state[2]
        print(
            f"N={processes}: ingest {events:,.0f} events/s (load {ingest_load}); "
            f"journeys {steps / elapsed:,.0f} steps/s, {customers / elapsed:,.0f} customers/s "
            f"({steps:,} steps in {elapsed:.1f} s, load {load()})",
            flush=True,
        )
        return {"events": events, "steps": steps / elapsed}
    finally:
        await db.dispose()
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    print(f"{args.customers:,} customers, {os.cpu_count()} cores, load {load()}", flush=True)
    results = {n: await run(n, args.customers, args.clients) for n in args.processes}
    if 1 in results:
        base = results[1]
        for n, r in results.items():
            if n != 1:
                print(
                    f"N={n} against N=1: ingest x{r['events'] / base['events']:.2f}, "
                    f"journey steps x{r['steps'] / base['steps']:.2f}"
                )


if __name__ == "__main__":
    asyncio.run(main())
