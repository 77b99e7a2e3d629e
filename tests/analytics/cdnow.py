"""The CDNOW sample as (customer, day, dollars) transactions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

CDNOW = Path(__file__).parent / "data" / "CDNOW_sample.txt"
CALIBRATION_END = date(1997, 9, 30)  # 39 weeks after 1 January 1997, as in the paper


def transactions() -> list[tuple[str, date, float]]:
    rows = []
    for line in CDNOW.read_text().splitlines():
        _master, customer, day, _cds, dollars = line.split()
        rows.append((customer, date(int(day[:4]), int(day[4:6]), int(day[6:])), float(dollars)))
    return rows
