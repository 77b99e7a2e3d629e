"""CSV imports of the catalogue and of past orders; both are safe to run again.

Products (``id`` or ``product_id``, ``sku``, ``name``, ``price``, ``currency``, ``category``,
``brand``, ``image_url``, ``url``) are upserted by id.

Orders come one line item per row (``order_id``, ``placed_at``, one of ``user_id`` / ``email`` /
``phone`` / ``anonymous_id``, ``currency``, ``total``, ``channel``, ``store_id``,
``fulfillment``, ``coupon``, ``product_id``, ``sku``, ``name``, ``category``, ``price``,
``quantity``). Each order becomes one ``Order Completed`` event from the ``csv-import`` source
with ``messageId`` ``import:order:<order_id>``, through the same path as live events: it is
resolved to its customer, lands on the timeline and updates commerce state, and a second run is
deduplicated (a re-import changes nothing; change an order with ``Order Updated`` events).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import internal_source
from omnicx.commerce.projector import money, upsert_product
from omnicx.db import Database, utcnow
from omnicx.hooks import Hooks
from omnicx.profiles.record import IncomingEvent, record_events

IMPORT_SOURCE = "csv-import"
CHUNK = 500
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            yield line, {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}


def count_rows(path: Path) -> int:
    return sum(1 for _ in _rows(path))


async def import_products(db: Database, path: Path, progress: Progress) -> ImportReport:
    report = ImportReport()
    total = count_rows(path)
    batch: list[tuple[str, dict[str, Any]]] = []
    for line, row in _rows(path):
        report.rows += 1
        product_id = row.get("id") or row.get("product_id") or row.get("sku")
        price = money(row["price"]) if row.get("price") else None
        if not product_id or (row.get("price") and price is None):
            report.errors.append(f"line {line}: needs an id and a numeric price")
            continue
        fields: dict[str, Any] = {
            k: row[k][:1000]
            for k in ("sku", "name", "category", "brand", "image_url", "url")
            if row.get(k)
        }
        if row.get("currency"):
            fields["currency"] = row["currency"][:3].upper()
        if price is not None:
            fields["price"] = price
        batch.append((product_id[:100], fields))
        if len(batch) >= CHUNK:
            await _write_products(db, batch)
            report.stored += len(batch)
            batch = []
            progress(report.rows, total)
    if batch:
        await _write_products(db, batch)
        report.stored += len(batch)
    progress(report.rows, total)
    return report


async def _write_products(db: Database, batch: list[tuple[str, dict[str, Any]]]) -> None:
    now = utcnow()

    async def work(session: AsyncSession) -> None:
        for product_id, fields in batch:
            await upsert_product(session, product_id=product_id, fields=fields, now=now)

    await db.transaction(work)


def _parse_time(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _orders(path: Path, report: ImportReport) -> dict[str, dict[str, Any]]:
    orders: dict[str, dict[str, Any]] = {}
    for line, row in _rows(path):
        report.rows += 1
        order_id = row.get("order_id")
        ids = {k: row[k] for k in ("user_id", "anonymous_id", "email", "phone") if row.get(k)}
        try:
            placed = _parse_time(row.get("placed_at", ""))
        except ValueError:
            report.errors.append(f"line {line}: placed_at must be an ISO 8601 time")
            continue
        if not order_id or not ids:
            report.errors.append(f"line {line}: needs order_id and a customer identifier")
            continue
        order = orders.setdefault(order_id, {"ids": ids, "placed": placed, "row": row, "lines": []})
        if row.get("product_id") or row.get("sku"):
            order["lines"].append(
                {
                    "product_id": row.get("product_id") or row["sku"],
                    **{k: row[k] for k in ("sku", "name", "category") if row.get(k)},
                    "price": float(money(row.get("price")) or 0),
                    "quantity": int(row.get("quantity") or 1),
                }
            )
    return orders


def _order_event(order_id: str, order: dict[str, Any]) -> IncomingEvent:
    row, ids = order["row"], order["ids"]
    props: dict[str, Any] = {"order_id": order_id, "products": order["lines"]}
    for key in ("currency", "channel", "store_id", "fulfillment", "coupon"):
        if row.get(key):
            props[key] = row[key]
    if row.get("total"):
        props["total"] = float(money(row["total"]) or 0)
    traits = {k: ids[k] for k in ("email", "phone") if k in ids}
    return IncomingEvent(
        message_id=f"import:order:{order_id}",
        type="track",
        event="Order Completed",
        user_id=ids.get("user_id"),
        anonymous_id=ids.get("anonymous_id"),
        timestamp=order["placed"],
        properties=props,
        context={"traits": traits} if traits else {},
    )


async def import_orders(db: Database, hooks: Hooks, path: Path, progress: Progress) -> ImportReport:
    report = ImportReport()
    orders = _orders(path, report)
    events = [_order_event(order_id, order) for order_id, order in orders.items()]
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]

        async def work(session: AsyncSession, chunk: list[IncomingEvent] = chunk) -> list[str]:
            source = await internal_source(session, name=IMPORT_SOURCE)
            outcomes = await record_events(
                session,
                source_id=source.id,
                channel=source.kind,
                events=chunk,
                settings=db.settings,
                received_at=utcnow(),
                hooks=hooks,
            )
            return [o.status for o in outcomes]

        statuses = await db.transaction(work)
        report.stored += statuses.count("stored")
        report.unchanged += statuses.count("duplicate")
        report.errors += [
            f"order {e.message_id}: refused ({s})"
            for e, s in zip(chunk, statuses, strict=True)
            if s == "rejected"
        ]
        progress(start + len(chunk), len(events))
    return report
