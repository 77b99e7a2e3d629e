"""``/healthz``, ``/readyz`` and ``/metrics``: what a load balancer, an orchestrator and
Prometheus ask. None needs a token: they reveal no customer data (put ``/metrics`` behind the
proxy's allow-list if queue depths are sensitive to you)."""

from __future__ import annotations

import logging
from functools import lru_cache

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from omnicx import metrics, migrate
from omnicx.db import Db, utcnow
from omnicx.errors import JsonResponse
from omnicx.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


@lru_cache
def expected_heads() -> frozenset[str]:
    """The migration heads this code ships (one per capability branch)."""
    config = migrate.alembic_config(Settings(env="test"))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (it does not look at the database)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: see `checks`."}})
async def readyz(db: Db) -> JsonResponse:
    """Readiness: the database answers and its schema is at this code's migrations."""
    checks: dict[str, str] = {}
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            applied = set(
                (await session.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
        checks["database"] = "ok"
        missing = expected_heads() - applied
        checks["migrations"] = "ok" if not missing else f"pending: {', '.join(sorted(missing))}"
    except SQLAlchemyError as exc:
        log.warning("readiness check failed: %s", exc)
        checks.setdefault("database", f"unreachable: {type(exc).__name__}")
        checks.setdefault("migrations", "unknown")
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(db: Db) -> Response:
    """Prometheus metrics: counters of this machine's processes, queue gauges from the database."""
    async with db.session() as session:
        samples = await metrics.read_probes(session, utcnow())
    return Response(metrics.render(samples), media_type=metrics.CONTENT_TYPE)
