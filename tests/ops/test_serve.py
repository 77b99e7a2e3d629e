"""``omnicx serve --workers N``: several API processes need PostgreSQL; SQLite is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnicx.ops.serve import check_workers, multiprocess_metrics_dir, remove_metrics_dir
from omnicx.settings import Settings


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
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
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
