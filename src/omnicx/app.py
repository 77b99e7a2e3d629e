"""The FastAPI application: one router per capability, one error shape, one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from omnicx import __version__, analytics, commerce, console, heap, ops, segments, worker
from omnicx.analytics.router import router as analytics_router
from omnicx.commerce.router import router as commerce_router
from omnicx.conversations import register as register_conversations
from omnicx.conversations.channels import router as conversation_channels_router
from omnicx.conversations.router import router as conversations_router
from omnicx.conversations.sockets import router as conversation_sockets_router
from omnicx.db import Database
from omnicx.errors import install_error_handlers
from omnicx.hooks import Hooks
from omnicx.ingest.router import router as ingest_router
from omnicx.journeys import register as register_journeys
from omnicx.journeys.router import router as journeys_router
from omnicx.messaging import inapp_router, public
from omnicx.messaging import register as register_messaging
from omnicx.messaging.router import router as messaging_router
from omnicx.ops import retention
from omnicx.profiles.router import router as profiles_router
from omnicx.segments.router import router as segments_router
from omnicx.settings import Settings, get_settings

ROUTERS = (
    ingest_router,
    profiles_router,
    commerce_router,
    segments_router,
    journeys_router,
    analytics_router,
    messaging_router,
    inapp_router.router,
    public.router,
    conversations_router,
    conversation_channels_router,
    conversation_sockets_router,
)


def build_hooks(settings: Settings) -> Hooks:
    """Every capability's reactions, registered once per process."""
    hooks = Hooks()
    commerce.register(hooks, settings)
    register_messaging(hooks, settings)
    analytics.register(hooks, settings)
    segments.register(hooks, settings)
    register_journeys(hooks, settings)
    register_conversations(hooks, settings)
    retention.register(hooks, settings)
    return hooks


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app; ``database`` lets a caller share its engine (tests do)."""
    settings = settings or (database.settings if database else get_settings())
    db = database or Database(settings)
    hooks = build_hooks(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        heap.settle()
        stop = asyncio.Event()
        task = (
            asyncio.create_task(worker.run(db, hooks, stop)) if settings.embedded_worker else None
        )
        yield
        stop.set()
        if task is not None:
            await task
        await db.dispose()

    app = FastAPI(
        title="OmniCX",
        version=__version__,
        description="One continuous conversation with each customer, across every channel.",
        lifespan=lifespan,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.hooks = hooks
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    console.install(app)
    ops.install(app, settings)
    return app
