"""The FastAPI application: one router per capability, one error shape, one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from omnicx import __version__
from omnicx.db import Database
from omnicx.errors import install_error_handlers
from omnicx.ingest.router import router as ingest_router
from omnicx.profiles.router import router as profiles_router
from omnicx.settings import Settings, get_settings

ROUTERS = (ingest_router, profiles_router)


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app; ``database`` lets a caller share its engine (tests do)."""
    settings = settings or (database.settings if database else get_settings())
    db = database or Database(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await db.dispose()

    app = FastAPI(
        title="OmniCX",
        version=__version__,
        description="One continuous conversation with each customer, across every channel.",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.settings = settings
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    return app
