"""``omnicx analytics``: refresh computed traits, fit CLV models on a file, test A/B counts."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from omnicx.analytics import clv, stats

app = typer.Typer(help="Analytics: CLV, experiments and computed traits.", no_args_is_help=True)
err = Console(stderr=True)


def _day(text: str) -> date:
    return datetime.fromisoformat(text.strip()).date()


def read_transactions(
    path: Path, *, customer_col: str, date_col: str, amount_col: str
) -> list[tuple[str, date, float]]:
    """Rows of (customer, day, amount) from a CSV with a header line."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c for c in (customer_col, date_col, amount_col) if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise typer.BadParameter(
                f"column(s) {', '.join(missing)} not in the header "
                f"({', '.join(reader.fieldnames or [])})",
                param_hint="--transactions",
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row[customer_col], _day(row[date_col]), float(row[amount_col] or 0)))
            except (ValueError, TypeError) as exc:
                raise typer.BadParameter(
                    f"line {line}: {exc}", param_hint="--transactions"
                ) from None
    return rows


@app.command("clv")
def fit_clv(
    transactions: Annotated[Path, typer.Option(help="CSV of transactions, one per row.")],
    calibration_end: Annotated[
        str, typer.Option(help="Last day (YYYY-MM-DD) of the calibration period, inclusive.")
    ],
    customer_col: Annotated[str, typer.Option(help="Customer id column.")] = "customer_id",
    date_col: Annotated[str, typer.Option(help="Date column (ISO date or time).")] = "date",
    amount_col: Annotated[str, typer.Option(help="Amount column.")] = "amount",
    period: Annotated[str, typer.Option(help="Time unit: day, week or month.")] = "week",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Fit BG/NBD and Gamma-Gamma to a transaction file; print the parameters."""
    if not transactions.is_file():
        raise typer.BadParameter(f"{transactions} is not a file", param_hint="--transactions")
    if period not in clv.PERIOD_DAYS:
        raise typer.BadParameter("use day, week or month", param_hint="--period")
    try:
        end = date.fromisoformat(calibration_end)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint="--calibration-end") from None
    rows = read_transactions(
        transactions, customer_col=customer_col, date_col=date_col, amount_col=amount_col
    )
    summary = clv.summarise(rows, calibration_end=end, period=period)
    if not summary.customers:
        raise typer.BadParameter("no transaction on or before the calibration end")
    result: dict[str, Any] = {
        "customers": len(summary.customers),
        "repeat_customers": int((summary.x > 0).sum()),
        "repeat_transactions": int(summary.x.sum()),
        "calibration_end": end.isoformat(),
        "period": period,
    }
    try:
        result["bg_nbd"] = clv.fit_bg_nbd(summary.x, summary.t_x, summary.T).as_dict()
        gg = clv.fit_gamma_gamma(summary.x, summary.m).as_dict()
    except clv.FitError as exc:
        err.print(f"[red]cannot fit:[/red] {exc}")
        raise typer.Exit(1) from None
    result["gamma_gamma"] = {k: v for k, v in gg.items() if k != "log_likelihood"}
    result["gamma_gamma_log_likelihood"] = gg["log_likelihood"]
    if not as_json:
        err.print(
            f"{result['customers']} customers, {result['repeat_customers']} bought again "
            f"({result['repeat_transactions']} repeat purchase days), times in {period}s"
        )
    print(json.dumps(result, indent=None if as_json else 2))


@app.command("abtest")
def abtest(
    control: Annotated[str, typer.Option(help="Control as EXPOSED/CONVERTED, e.g. 1000/100.")],
    treatment: Annotated[str, typer.Option(help="Treatment as EXPOSED/CONVERTED.")],
    sequential: Annotated[
        bool, typer.Option(help="Always-valid confidence sequence (safe to peek).")
    ] = False,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="1 - confidence.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Compare two conversion counts: uplift, p-value, interval, chance to win, SRM."""
    try:
        (na, ca), (nb, cb) = stats.parse_counts(control), stats.parse_counts(treatment)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    result = stats.compare(
        stats.Moments.proportion(na, ca),
        stats.Moments.proportion(nb, cb),
        alpha=alpha,
        sequential=sequential,
    )
    srm = stats.srm_p_value([na, nb])
    out: dict[str, Any] = {
        "control": {"exposures": na, "conversions": ca, "rate": ca / na if na else None},
        "treatment": {"exposures": nb, "conversions": cb, "rate": cb / nb if nb else None},
        **{
            k: v for k, v in result.as_dict().items() if k not in ("control_mean", "treatment_mean")
        },
        "srm_p_value": srm,
        "warnings": [stats.SRM_WARNING] if srm < stats.SRM_THRESHOLD else [],
    }
    if as_json:
        print(json.dumps(out))
        return
    for name in ("control", "treatment"):
        v = out[name]
        rate = "n/a" if v["rate"] is None else f"{v['rate']:.2%}"
        print(f"{name:<10} {v['exposures']:>10} exposed {v['conversions']:>8} converted  {rate}")
    if result.uplift is not None:
        print(f"uplift     {result.uplift:+.2%}")
    if result.p_value is not None and result.ci is not None:
        kind = "sequential " if sequential else ""
        print(f"p-value    {result.p_value:.4g} ({kind}two-sided)")
        print(f"{1 - alpha:.0%} CI     [{result.ci[0]:+.2%}, {result.ci[1]:+.2%}]")
        print(f"chance to win {result.chance_to_win:.1%}")
    if result.note:
        print(f"note: {result.note}")
    for warning in out["warnings"]:
        print(f"warning: {warning}")


@app.command("refresh")
def refresh() -> None:
    """Recompute CLV, P(alive), RFM and the other computed traits for every customer now."""
    from omnicx.analytics.service import refresh_now
    from omnicx.db import Database
    from omnicx.settings import get_settings

    async def main() -> dict[str, Any]:
        settings = get_settings()
        db = Database(settings)
        try:
            from omnicx.app import build_hooks

            return await refresh_now(db, settings, hooks=build_hooks(settings))
        finally:
            await db.dispose()

    report = asyncio.run(main())
    print(json.dumps(report, default=str))
