"""Prometheus metrics every package shares, served at ``GET /metrics``.

Two kinds:

- **Counted in the process**: events ingested and refused, sends by channel and outcome,
  provider errors, timer lateness, HTTP requests, rate-limit refusals, open WebSockets. A
  package bumps them with one call (``metrics.INGEST_EVENTS.labels(...).inc()``, or the helpers
  below). With several API processes on one machine (``omnicx serve --workers N``) the counts
  are summed across them through ``PROMETHEUS_MULTIPROC_DIR``, which ``serve`` sets up; on
  several machines, scrape each one (Prometheus sums by ``instance``).
- **Read from the database at scrape time**: queue depths, due and parked timers, the oldest
  due timer's lateness. They describe the shared PostgreSQL, so every process reports the same
  figures, and they cost a few indexed ``COUNT`` queries per scrape. Each package registers a
  *probe* (:func:`probe`), a small service query returning samples, at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "CONTENT_TYPE",
    "HTTP_REQUESTS",
    "INGEST_EVENTS",
    "INGEST_REJECTS",
    "PROVIDER_ERRORS",
    "RATE_LIMITED",
    "SENDS",
    "TIMER_LATENESS",
    "WEBSOCKETS",
    "Sample",
    "ingested",
    "observe_send",
    "probe",
    "render",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

INGEST_EVENTS = Counter(
    "omnicx_ingest_events_total", "Events accepted by /v1/* (stored or duplicate).", ["outcome"]
)
INGEST_REJECTS = Counter(
    "omnicx_ingest_rejects_total", "Events or requests /v1/* refused, by reason.", ["code"]
)
TIMER_LATENESS = Histogram(
    "omnicx_timer_lateness_seconds",
    "How long after its due time a durable timer ran.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
SENDS = Counter(
    "omnicx_message_sends_total",
    "Send attempts by channel and outcome (sent, delivered, or the error's kind).",
    ["channel", "status"],
)
PROVIDER_ERRORS = Counter(
    "omnicx_provider_errors_total", "Errors raised by channel providers.", ["provider", "error"]
)
HTTP_REQUESTS = Counter(
    "omnicx_http_requests_total",
    "HTTP requests answered, by route template and status class.",
    ["method", "route", "status"],
)
RATE_LIMITED = Counter(
    "omnicx_rate_limited_total", "Requests refused with 429, by what was limited.", ["scope"]
)
# livesum: in multiprocess mode, the open connections of the processes that are alive.
WEBSOCKETS = Gauge(
    "omnicx_websocket_connections",
    "WebSocket connections open now.",
    ["endpoint"],
    multiprocess_mode="livesum",
)


def ingested(accepted: int, duplicates: int, rejected: Iterable[str]) -> None:
    """Count one ingest request's outcome (``rejected``: each refused event's code)."""
    if accepted:
        INGEST_EVENTS.labels("stored").inc(accepted)
    if duplicates:
        INGEST_EVENTS.labels("duplicate").inc(duplicates)
    for code in rejected:
        INGEST_REJECTS.labels(code).inc()


def observe_send(channel: str | None, provider: str | None, outcome: object) -> None:
    """Count one send attempt: a result carries its ``status``; an exception is an error."""
    if isinstance(outcome, BaseException):
        kind = type(outcome).__name__
        PROVIDER_ERRORS.labels(provider or "none", kind).inc()
        SENDS.labels(channel or "none", f"error:{kind}").inc()
        return
    SENDS.labels(channel or "none", str(getattr(outcome, "status", "sent"))).inc()


@dataclass(frozen=True, slots=True)
class Sample:
    """One gauge value read from the database: ``name`` (without the prefix), labels, value."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


Probe = Callable[[AsyncSession, datetime], Awaitable[list[Sample]]]
_PROBES: list[Probe] = []


def probe(fn: Probe) -> Probe:
    """Register a scrape-time query (once per process; registering twice is harmless)."""
    if fn not in _PROBES:
        _PROBES.append(fn)
    return fn


async def read_probes(session: AsyncSession, now: datetime) -> list[Sample]:
    samples: list[Sample] = []
    for fn in _PROBES:
        samples.extend(await fn(session, now))
    return samples


class _Snapshot(Collector):
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for s in self.samples:
            name = f"omnicx_{s.name}"
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name, s.help, labels=[k for k, _ in s.labels]
                )
            family.add_metric([v for _, v in s.labels], s.value)
        return list(families.values())


def render(samples: list[Sample]) -> bytes:
    """The exposition text: this process's (or all local processes') counters + ``samples``."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(samples))
    return counted + generate_latest(snapshot)
