"""``omnicx serve --workers N``: several API processes need PostgreSQL; SQLite is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from omnicx import migrate
from omnicx.ops.serve import check_workers, multiprocess_metrics_dir, remove_metrics_dir
from omnicx.settings import Settings
from tests.live_server import free_port


def test_several_processes_on_sqlite_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")}
    env["OMNICX_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    run = subprocess.run(
        [sys.executable, "-m", "omnicx.cli", "serve", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2
    assert "need PostgreSQL" in run.stderr
    assert not (tmp_path / "x.db").exists()  # refused before migrating anything


def test_check_workers() -> None:
    check_workers(Settings(database_url="sqlite:///a.db"), 1)
    check_workers(Settings(database_url="postgresql://u@h/db"), 4)
    with pytest.raises(ValueError, match="PostgreSQL"):
        check_workers(Settings(database_url="sqlite:///a.db"), 2)


def test_metrics_directory_is_made_and_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # multiprocess_metrics_dir() sets the variable itself: setenv first makes monkeypatch restore
    # it at the end (a deleted directory left in the environment breaks /metrics of later servers).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    made = multiprocess_metrics_dir()
    assert made is not None and os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
    remove_metrics_dir(made)
    assert not Path(made).exists()
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"old")
    (given / "keep.txt").write_text("operator's")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    assert multiprocess_metrics_dir() is None
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]


def test_a_worker_serves_its_own_counters(tmp_path: Path) -> None:
    """Sends and timer lateness are counted in the worker: it has a metrics port of its own."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    migrate.upgrade(Settings(database_url=url))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICX_")}
    env |= {"OMNICX_DATABASE_URL": url, "OMNICX_WORKER_METRICS_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "omnicx.cli", "worker"], env=env, cwd=tmp_path, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the worker exited"
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the metrics port never answered"
                time.sleep(0.2)
        assert "# TYPE omnicx_message_sends_total counter" in body
        assert "# TYPE omnicx_timer_lateness_seconds histogram" in body
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
