"""Commerce context: catalogue, stores, carts, wishlists, orders and click-and-collect."""

from __future__ import annotations

from omnicx.commerce.pickups import Pickups
from omnicx.commerce.projector import ABANDON_TIMER, Projector, on_erase, on_merge
from omnicx.hooks import Hooks
from omnicx.settings import Settings


def register(hooks: Hooks, settings: Settings) -> None:
    """Hook commerce into ingest (projector), merges, erasure and the timers it owns."""
    projector = Projector(settings, hooks)
    hooks.projectors.append(projector)
    hooks.on_merge.append(on_merge)
    hooks.on_erase.append(on_erase)
    hooks.timer(ABANDON_TIMER, projector.abandon)
    Pickups(settings, hooks).register()
