"""Live fan-out: delivery latency of conversation messages to 1,000 open WebSockets, against a
bare WebSocket broadcast on the same uvicorn, measured in the same run.

For the chosen backend the benchmark

1. creates a fresh database (a SQLite file in a temp dir, or ``omnicx_bench_<random>`` on
   PostgreSQL, dropped at the end), migrates it, and creates an agent token and a conversation
   (a customer message through ``POST /c/messages``);
2. starts ``uvicorn omnicx.app:create_app --factory`` as a subprocess and opens ``--clients``
   (default 1,000) agent WebSockets (``/api/conversations/ws``: each receives every
   conversation's events, as agents' open inboxes do);
3. posts ``--messages`` internal notes (default 30; notes, so the figure is the fan-out alone,
   not a push or SMS to the offline customer) to the conversation through
   ``POST /api/conversations/{id}/messages``, one every ``--interval`` seconds; each is written
   in its own transaction and announced at commit (in-process on SQLite; ``pg_notify`` →
   ``LISTEN`` → one row read → every socket on PostgreSQL); the latency of a delivery is the time
   from just before the POST to the moment that socket has read the event;
4. baseline: the same number of sockets on a bare Starlette app under the same uvicorn whose
   ``POST /send`` hands the body to every socket (no authentication, no database, no broker):
   what WebSocket fan-out itself costs on this machine;
5. prints p50 / p90 / p99 / max of each and their ratio (the target is p99 ≤ 100 ms), and
   each one's POST response times (the write path apart from the fan-out).

The sockets are held by ``--procs`` client processes (default 4) so that reading a thousand
sockets in one Python process does not become the figure; send and arrival times come from
``time.monotonic``, one clock for every process on the machine.

Run: ``.venv/bin/python bench/chat.py [--backend sqlite|postgresql] [--clients N]
[--messages M] [--interval S]``; ``OMNICX_BENCH_POSTGRES_URL`` names the PostgreSQL server
(default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path

import asyncpg
import httpx
import orjson
import websockets
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from omnicx import migrate
from omnicx.auth.service import Role, SourceKind, create_source, create_token
from omnicx.db import Database
from omnicx.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key"
PG_URL = os.environ.get(
    "OMNICX_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- the baseline app: a bare broadcast -----------------------------------------------------

_QUEUES: set[asyncio.Queue[str]] = set()


async def _bare_socket(ws: WebSocket) -> None:
    # The same shape as OmniCX's sockets (a queue and a forwarding task per socket), without
    # authentication, database, broker or conversation rules.
    await ws.accept()
    queue: asyncio.Queue[str] = asyncio.Queue()
    _QUEUES.add(queue)

    async def forward() -> None:
        while True:
            await ws.send_text(await queue.get())

    sender = asyncio.create_task(forward())
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        _QUEUES.discard(queue)
        sender.cancel()


async def _bare_send(request: Request) -> Response:
    text = orjson.dumps({"type": "message", "body": orjson.loads(await request.body())["body"]})
    for queue in list(_QUEUES):
        queue.put_nowait(text.decode())
    return Response(status_code=204)


async def _healthz(_request: Request) -> Response:
    return Response("ok")


def baseline_app() -> Starlette:
    return Starlette(
        routes=[
            WebSocketRoute("/ws", _bare_socket),
            Route("/send", _bare_send, methods=["POST"]),
            Route("/healthz", _healthz),
        ]
    )


# --- running servers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(app: str, url: str, cwd: Path) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--factory", "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    env = {
        **os.environ,
        "OMNICX_DATABASE_URL": url,
        "OMNICX_SECRET_KEY": SECRET,
        "OMNICX_EMBEDDED_WORKER": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return Server(proc, port)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    Server(proc, port).stop()
    raise RuntimeError("uvicorn did not answer /healthz within 90 s")


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    latencies: list[float]
    expected: int
    posts: list[float]  # each POST's response time: the write path, without the fan-out

    def pct(self, q: float, of: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if of is None else of)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        if not self.latencies:
            return f"{self.name:<28} deliveries 0/{self.expected}"
        return (
            f"{self.name:<28} deliveries {len(self.latencies):>6}/{self.expected:<6} "
            f"p50 {self.pct(0.50):7.1f} ms  p90 {self.pct(0.90):7.1f} ms  "
            f"p99 {self.pct(0.99):7.1f} ms  max {max(self.latencies) * 1000:7.1f} ms\n"
            f"{'':<28} POST response p50 {self.pct(0.5, self.posts):7.1f} ms  "
            f"max {max(self.posts) * 1000:7.1f} ms"
        )


def _client_process(
    socket_url: str,
    count: int,
    expected: int,
    ready: Queue[int],
    results: Queue[list[tuple[str, float]]],
) -> None:
    """Hold ``count`` sockets, note when each event arrives (``time.monotonic``, one clock for
    every process on the machine), and hand the notes back."""

    async def main() -> list[tuple[str, float]]:
        arrivals: list[tuple[str, float]] = []
        sockets = []
        for start in range(0, count, 50):  # connect in waves, as a crowd arrives
            sockets += await asyncio.gather(
                *(
                    websockets.connect(socket_url, max_queue=None, ping_interval=None)
                    for _ in range(min(50, count - start))
                )
            )
        gc.collect()  # as the server does (omnicx.heap): no long pauses in the clients either
        gc.freeze()
        ready.put(len(sockets))

        async def read(ws: websockets.ClientConnection) -> None:
            for _ in range(expected):
                raw = await ws.recv()
                now = time.monotonic()
                event = orjson.loads(raw)
                body = event["message"]["body"] if "message" in event else event.get("body")
                if isinstance(body, str) and body.startswith("bench "):
                    arrivals.append((body, now))

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        await asyncio.wait(readers, timeout=expected * 5 + 30)
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        return arrivals

    results.put(asyncio.run(main()))


async def fan_out(
    name: str,
    socket_url: str,
    send: httpx.AsyncClient,
    send_path: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    skip: int,
) -> Figures:
    """Open the sockets in client processes, send the messages paced, collect the latencies.
    ``skip``: events each socket gets before the first message (OmniCX's ``ready``)."""
    ctx = mp.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    results: Queue[list[tuple[str, float]]] = ctx.Queue()
    share = [
        args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)
    ]
    procs = [
        ctx.Process(
            target=_client_process,
            args=(socket_url, n, args.messages + skip, ready, results),
            daemon=True,
        )
        for n in share
        if n
    ]
    for proc in procs:
        proc.start()
    connected = sum([await asyncio.to_thread(ready.get, True, 300) for _ in procs])
    assert connected == args.clients
    await asyncio.sleep(1.0)
    sent_at: dict[str, float] = {}
    posts: list[float] = []
    for i in range(args.messages):
        body = f"bench message {i} {uuid.uuid4().hex[:8]}"
        sent_at[body] = time.monotonic()
        payload = {"body": body, "internal": True} if headers else {"body": body}
        response = await send.post(send_path, json=payload, headers=headers)
        posts.append(time.monotonic() - sent_at[body])
        assert response.status_code in (201, 204), response.text
        await asyncio.sleep(args.interval)
    latencies: list[float] = []
    for _ in procs:
        for body, arrived in await asyncio.to_thread(results.get, True, 600):
            if body in sent_at:
                latencies.append(arrived - sent_at[body])
    for proc in procs:
        proc.join(30)
    return Figures(name, latencies, args.messages * args.clients, posts)


async def prepare(url: str) -> tuple[str, str]:
    """An agent token and a web write key in a migrated database."""
    settings = Settings(database_url=url, env="test", secret_key=SECRET)
    await asyncio.to_thread(migrate.upgrade, settings)
    db = Database(settings)

    async def work(session: AsyncSession) -> tuple[str, str]:
        _, key = await create_source(session, name="web", kind=SourceKind.web)
        _, token = await create_token(session, name="bench-agent", role=Role.agent)
        return key, token

    try:
        return await db.transaction(work)
    finally:
        await db.dispose()


async def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    key, token = await prepare(url)
    agent = {"Authorization": f"Bearer {token}"}
    server = start_server("omnicx.app:create_app", url, workdir)
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            first = await http.post(
                "/c/messages",
                json={"body": "hello, I'd like a human"},
                headers={"X-OmniCX-Write-Key": key, "X-OmniCX-Anonymous-Id": "bench-visitor"},
            )
            cid = first.json()["items"][0]["conversation_id"]
            omnicx = await fan_out(
                f"omnicx ({args.backend})",
                f"ws://127.0.0.1:{server.port}/api/conversations/ws?token={token}",
                http,
                f"/api/conversations/{cid}/messages",
                agent,
                args,
                1,
            )
    finally:
        server.stop()
    bare = start_server("bench.chat:baseline_app", url, workdir)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bare.port}") as http:
            baseline = await fan_out(
                "bare broadcast (baseline)",
                f"ws://127.0.0.1:{bare.port}/ws",
                http,
                "/send",
                {},
                args,
                0,
            )
    finally:
        bare.stop()
    print(f"\n== {args.clients} WebSockets, {args.messages} messages every {args.interval} s")
    print(omnicx.line())
    print(baseline.line())
    print(
        f"ratio omnicx / baseline: p50 {omnicx.pct(0.5) / baseline.pct(0.5):.2f}x, "
        f"p99 {omnicx.pct(0.99) / baseline.pct(0.99):.2f}x; "
        f"target p99 <= 100 ms: {'met' if omnicx.pct(0.99) <= 100 else 'NOT met'}"
    )


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnicx-bench-chat-") as tmp:
        workdir = Path(tmp)
        if args.backend == "sqlite":
            asyncio.run(run(args, f"sqlite:///{workdir / 'chat.db'}", workdir))
            return
        name = f"omnicx_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        try:
            asyncio.run(run(args, f"{PG_URL.rsplit('/', 1)[0]}/{name}", workdir))
        finally:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
