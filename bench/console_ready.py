"""How long `make run` takes on a fresh database until the console is populated.

Runs what ``make run`` runs (``omnicx db upgrade``, then ``omnicx demo --if-empty`` beside
``omnicx serve``) on a new SQLite file in a temporary directory, and polls the console as a person
would: when the login page answers, when the demo staff can log in, when Ana Berg's 360 is there
(the story), and when the demo has finished (every customer ingested, traits computed). The
baseline, measured in the same run: ``python -c "import omnicx.cli"`` (the start-up cost every
command pays on this machine), so the ratios survive a loaded machine.

    .venv/bin/python bench/console_ready.py [--customers 2000]

With ``--fresh-clone`` it times ``make run`` itself in a fresh clone of this checkout's HEAD
(the venv built from nothing, the pip cache as the machine has it; ``PIP_NO_CACHE_DIR=1`` in the
environment makes pip download everything), until Ana's story is on the console.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def poll(port: int, started: float, done: subprocess.Popen[bytes] | None) -> dict[str, float]:
    """Seconds from ``started`` to each mark, polling the console as a person would; until the
    demo process ``done`` exits (or, without one, until the story is there)."""
    marks: dict[str, float] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while time.monotonic() - started < 900:
            now = time.monotonic() - started
            if done is not None and done.poll() is not None:
                marks.setdefault("demo done", now)
                break
            if done is None and "story" in marks:
                break
            try:
                if "login page" not in marks and client.get("/console/login").is_success:
                    marks["login page"] = now
                if "logged in" not in marks:
                    r = client.post(
                        "/console/login",
                        data={"email": "admin@demo.omnicx", "password": "demo-password"},
                    )
                    if r.status_code == 303:
                        marks["logged in"] = now
                if "logged in" in marks and "story" not in marks:
                    r = client.get("/console/customers/email:ana.berg@example.com")
                    if r.status_code == 200 and "ANA-1001" in r.text:
                        marks["story"] = now
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    return marks


def fresh_clone(port: int) -> dict[str, float]:
    """``make run`` itself in a fresh clone of this checkout's HEAD: the venv built, the
    database migrated, the demo beside the server; from the start of ``make run``."""
    with tempfile.TemporaryDirectory(prefix="omnicx-clone-") as workdir:
        clone = Path(workdir) / "omnicx"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNICX_", "VIRTUAL_"))}
        env["OMNICX_PORT"] = str(port)
        started = time.monotonic()
        make = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return poll(port, started, None)
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(60)


def commands(port: int, customers: int) -> dict[str, float]:
    """What ``make run`` runs, with this venv, on a new SQLite file."""
    with tempfile.TemporaryDirectory(prefix="omnicx-bench-") as workdir:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")},
            "OMNICX_DATABASE_URL": f"sqlite:///{workdir}/omnicx.db",
            "OMNICX_PORT": str(port),
        }
        started = time.monotonic()
        subprocess.run([BIN / "omnicx", "db", "upgrade"], env=env, cwd=workdir, check=True)
        migrated = time.monotonic() - started
        demo = subprocess.Popen(
            [BIN / "omnicx", "demo", "--if-empty", "--customers", str(customers)],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        serve = subprocess.Popen(
            [BIN / "omnicx", "serve", "--no-migrate"],
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return {"migrated": migrated, **poll(port, started, demo)}
        finally:
            serve.terminate()
            serve.wait(30)
            if demo.poll() is None:
                demo.terminate()
                demo.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument(
        "--fresh-clone", action="store_true", help="time `make run` in a fresh clone instead"
    )
    args = parser.parse_args()

    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import omnicx.cli"], check=True)
    baseline = time.monotonic() - started
    marks = fresh_clone(args.port) if args.fresh_clone else commands(args.port, args.customers)
    print(f"baseline: import omnicx.cli {baseline:.1f}s")
    for name, seconds in marks.items():
        print(f"{name:>12}: {seconds:6.1f}s  ({seconds / baseline:.1f}× the baseline)")


if __name__ == "__main__":
    main()
