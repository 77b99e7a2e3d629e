"""A real uvicorn server in a subprocess, for tests that drive HTTP clients or crash the server.

``LiveServer(database_url)`` starts ``uvicorn omnicx.app:create_app --factory`` on a free port of
127.0.0.1 with ``OMNICX_DATABASE_URL`` and ``OMNICX_SECRET_KEY`` set, and returns once
``GET /healthz`` answers. ``kill()`` sends SIGKILL (a crash: nothing is flushed or closed),
``restart()`` brings a new process up on the same port, so clients keep their ``url``. The
database must already be migrated (the ``database_url`` fixture is).

The server's output goes to a log file; a server that dies or never gets healthy raises
:class:`ServerError` with the end of that log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

__all__ = ["LiveServer", "ServerError", "free_port", "live_server"]

POLL_INTERVAL = 0.05


class ServerError(RuntimeError):
    """The server process exited or did not become healthy in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """One OmniCX API process at a time, on a fixed port, that a test can kill and restart."""

    host = "127.0.0.1"

    def __init__(
        self,
        database_url: str,
        *,
        secret_key: str = "test-secret-key",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.database_url = database_url
        self.secret_key = secret_key
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.starts = 0
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "omnicx.app:create_app",
            "--factory",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def environment(self) -> dict[str, str]:
        # Only this server's settings: an OMNICX_* variable of the test run must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")}
        env.update(
            OMNICX_DATABASE_URL=self.database_url,
            OMNICX_SECRET_KEY=self.secret_key,
            OMNICX_ENV="test",
            PYTHONUNBUFFERED="1",
        )
        env.update(self._extra_env)
        return env

    def start(self) -> None:
        """Start the process and return once ``/healthz`` answers 200."""
        if self.running:
            raise ServerError(f"server already running (pid {self.pid})")
        if self._workdir is None:
            # Its own working directory, so no ./.env or ./omnicx.db of the checkout is read.
            self._workdir = tempfile.TemporaryDirectory(prefix="omnicx-live-")
        if self._log is None:
            self._log = open(self.log_path, "ab")  # closed in close()
        self._log.write(f"--- start {self.starts + 1}: {' '.join(self.command())}\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(
            self.command(),
            cwd=self._workdir.name,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise ServerError(f"server exited with {code}:\n{self.log_tail()}")
                try:
                    response = client.get("/healthz")
                    if response.status_code == 200:
                        return
                    last_error = f"/healthz answered {response.status_code}"
                except httpx.TransportError as exc:
                    last_error = repr(exc)
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"server not healthy after {self.startup_timeout}s ({last_error}):\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(POLL_INTERVAL)

    def kill(self) -> None:
        """SIGKILL the process (a crash) and reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        self._process = None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM); SIGKILL if it takes longer than ``timeout``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop the process if it still runs, then start a new one on the same port."""
        self.stop()
        self.start()

    @property
    def log_path(self) -> Path:
        if self._workdir is None:
            raise ServerError("server was never started")
        return Path(self._workdir.name) / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        if self._workdir is None or not self.log_path.exists():
            return "(no log)"
        if self._log is not None:
            self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the server and remove its working directory and log."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def live_server(
    database_url: str, *, secret_key: str = "test-secret-key", env: Mapping[str, str] | None = None
) -> Iterator[LiveServer]:
    """``with live_server(url) as server:`` a started server, closed on exit."""
    server = LiveServer(database_url, secret_key=secret_key, env=env)
    with server:
        yield server
