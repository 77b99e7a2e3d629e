"""How long `make run` takes on a fresh database until the console is populated.

Runs what ``make run`` runs (``omnicx db upgrade``, then ``omnicx demo --if-empty`` beside
``omnicx serve``) on a new SQLite file in a temporary directory, and polls the console as a person
would: when the login page answers, when the demo staff can log in, when Ana Berg's 360 is there
(the story), and when the demo has finished (every customer ingested, traits computed). The
baseline, measured in the same run: ``python -c "import omnicx.cli"`` (the start-up cost every
command pays on this machine), so the ratios survive a loaded machine.

    .venv/bin/python bench/console_ready.py [--customers 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()

    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import omnicx.cli"], check=True)
    baseline = time.monotonic() - started

    with tempfile.TemporaryDirectory(prefix="omnicx-bench-") as workdir:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")},
            "OMNICX_DATABASE_URL": f"sqlite:///{workdir}/omnicx.db",
            "OMNICX_PORT": str(args.port),
        }
        marks: dict[str, float] = {}
        started = time.monotonic()
        subprocess.run([BIN / "omnicx", "db", "upgrade"], env=env, cwd=workdir, check=True)
        marks["migrated"] = time.monotonic() - started
        demo = subprocess.Popen(
            [BIN / "omnicx", "demo", "--if-empty", "--customers", str(args.customers)],
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
            with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=10) as client:
                while time.monotonic() - started < 900 and "demo done" not in marks:
                    now = time.monotonic() - started
                    if demo.poll() is not None:
                        marks.setdefault("demo done", now)
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
        finally:
            serve.terminate()
            serve.wait(30)
            if demo.poll() is None:
                demo.terminate()
                demo.wait(30)
    print(f"baseline: import omnicx.cli {baseline:.1f}s")
    for name, seconds in marks.items():
        print(f"{name:>12}: {seconds:6.1f}s  ({seconds / baseline:.1f}× the baseline)")


if __name__ == "__main__":
    main()
