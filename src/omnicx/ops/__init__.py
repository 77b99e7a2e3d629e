"""Operations: health and readiness, metrics, logs with request ids, limits, data lifecycle.

:func:`install` puts the request middleware and the ops routes on the app and registers the
packages' scrape-time probes (queue depths read from the database). Imports stay inside it, so
``omnicx.models`` can import :mod:`omnicx.ops.models` without loading the packages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from omnicx.settings import Settings

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    from omnicx import metrics, timers
    from omnicx.messaging import delivery
    from omnicx.ops.health import router
    from omnicx.ops.middleware import RequestMiddleware
    from omnicx.ops.ratelimit import Limiter
    from omnicx.segments import engine as segments_engine

    metrics.probe(timers.depth)
    metrics.probe(delivery.queue_depth)
    metrics.probe(segments_engine.queue_depth)
    app.include_router(router)
    app.add_middleware(RequestMiddleware, settings=settings, limiter=Limiter(app.state.db))
