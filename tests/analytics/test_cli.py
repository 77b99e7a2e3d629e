"""``omnicx analytics clv``/``abtest`` (a file or counts in, the published numbers out) and
``refresh`` against a real database."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from omnicx import timers
from omnicx.analytics import service
from omnicx.cli import app
from omnicx.db import Database
from tests.analytics.cdnow import transactions
from tests.analytics.factories import add_orders
from tests.cli import omnicx

runner = CliRunner()


def cdnow_csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["cust", "when", "dollars"])
        for customer, day, dollars in transactions():
            writer.writerow([customer, day.isoformat(), dollars])
    return path


def test_clv_prints_the_published_cdnow_parameters(tmp_path: Path) -> None:
    path = cdnow_csv(tmp_path / "cdnow.csv")
    args = ["analytics", "clv", "--transactions", str(path), "--calibration-end", "1997-09-30"]
    args += ["--customer-col", "cust", "--date-col", "when", "--amount-col", "dollars", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    bg, gg = out["bg_nbd"], out["gamma_gamma"]
    assert {k: round(bg[k], 3) for k in ("r", "alpha", "a", "b")} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }
    assert round(bg["log_likelihood"], 1) == -9582.4
    assert {k: round(gg[k], 2) for k in ("p", "q", "gamma")} == {
        "p": 6.25,
        "q": 3.74,
        "gamma": 15.44,
    }
    assert out["customers"] == 2357 and out["repeat_transactions"] == 2457


def test_clv_refuses_bad_input(tmp_path: Path) -> None:
    path = cdnow_csv(tmp_path / "cdnow.csv")
    base = ["analytics", "clv", "--transactions", str(path), "--calibration-end"]
    missing = runner.invoke(app, [*base, "1997-09-30"])  # default column names absent
    assert missing.exit_code == 2 and "customer_id" in missing.output
    bad_date = runner.invoke(app, [*base, "30/09/1997", "--customer-col", "cust"])
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output
    assert runner.invoke(app, [*base, "1997-09-30", "--period", "fortnight"]).exit_code == 2
    nothing = tmp_path / "none.csv"
    assert (
        runner.invoke(
            app,
            ["analytics", "clv", "--transactions", str(nothing), "--calibration-end", "1997-09-30"],
        ).exit_code
        == 2
    )
    broken = tmp_path / "broken.csv"
    broken.write_text("customer_id,date,amount\nc1,2024-01-01,12\nc1,not a date,3\n")
    result = runner.invoke(
        app, ["analytics", "clv", "--transactions", str(broken), "--calibration-end", "2024-02-01"]
    )
    assert result.exit_code == 2 and "line 3" in result.output


def test_abtest_json_and_text() -> None:
    result = runner.invoke(
        app, ["analytics", "abtest", "--control", "1000/100", "--treatment", "1000/130", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["uplift"] == 0.3 or abs(out["uplift"] - 0.3) < 1e-12
    assert 0.06 < out["p_value"] < 0.07 and out["warnings"] == []
    assert out["control"] == {"exposures": 1000, "conversions": 100, "rate": 0.1}
    text = runner.invoke(
        app, ["analytics", "abtest", "--control", "5000/500", "--treatment", "5600/600"]
    )
    assert text.exit_code == 0 and "uplift" in text.stdout
    assert "sample ratio mismatch" in text.stdout
    bad = runner.invoke(app, ["analytics", "abtest", "--control", "10/20", "--treatment", "5/1"])
    assert bad.exit_code == 2


async def test_refresh_command_writes_traits_and_schedules_the_next(
    db: Database, database_url: str
) -> None:
    day = datetime(2024, 1, 10, tzinfo=UTC)
    await add_orders(db, [("p1", day, 10.0), ("p1", day + timedelta(days=5), 20.0)])
    await add_orders(db, [("p2", day, 15.0)])
    done = await omnicx(database_url, "analytics", "refresh")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["customers"] == 2 and report["repeat_customers"] == 1
    async with db.session() as session:
        traits = await service.computed_traits(session, profile_id="p1")
        pending = await timers.pending(session, key=service.REFRESH_TIMER)
    assert traits["clv_historical"] == 30.0
    assert pending is not None and pending.due_at is not None
