"""What ``omnicx serve`` runs: the app factory of each API process and the multi-process setup.

``omnicx serve --workers N`` starts N uvicorn processes sharing one socket. They keep nothing in
memory that another needs (sessions are tokens checked against the database; work and timers are
claimed with ``SKIP LOCKED``), so any number of them, on any number of machines, can serve one
PostgreSQL. SQLite is refused for N > 1: a SQLite file takes one writer at a time, and OmniCX
queues its writers on a lock inside one process, which several processes would defeat.

Metrics of the N processes are summed through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
directory unless one is given), so a scrape of any of them reports the machine's totals.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from fastapi import FastAPI

from omnicx.ops import logs
from omnicx.settings import Settings, get_settings


def create() -> FastAPI:
    """``omnicx.ops.serve:create``: configure logs, then build the app (one per process)."""
    from omnicx.app import create_app

    settings = get_settings()
    logs.configure(settings)
    return create_app(settings)


def check_workers(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.is_sqlite:
        raise ValueError(
            "several API processes need PostgreSQL (OMNICX_DATABASE_URL=postgresql://…); "
            "SQLite takes one writer at a time"
        )


def multiprocess_metrics_dir() -> str | None:
    """Share the processes' metrics through a directory; returns it if it was made here."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:  # the operator's: emptied, since counters restart with the processes
        for entry in os.listdir(given):
            if entry.endswith(".db"):
                os.remove(os.path.join(given, entry))
        return None
    path = tempfile.mkdtemp(prefix="omnicx-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def remove_metrics_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
