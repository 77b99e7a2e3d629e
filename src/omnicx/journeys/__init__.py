"""Journeys: versioned definitions, a durable engine on the timers table, goals, splits."""

from __future__ import annotations

from omnicx.hooks import Hooks
from omnicx.journeys import service
from omnicx.journeys.catalog import Catalog, Definitions
from omnicx.journeys.engine import Engine
from omnicx.journeys.projector import Projector
from omnicx.settings import Settings


def register(hooks: Hooks, settings: Settings) -> Engine:
    """Hear events (entries, goals, awaited events); run the enter, wake-up and goal timers."""
    definitions = Definitions()
    engine = Engine(settings, hooks, definitions)
    engine.register()
    hooks.projectors.append(
        Projector(Catalog(definitions, settings.journey_cache_seconds), definitions)
    )
    hooks.on_merge.append(service.on_merge)
    hooks.on_erase.append(service.on_erase)
    return engine
