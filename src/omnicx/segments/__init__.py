"""Segments: a condition language compiled to SQL, with real-time membership."""

from __future__ import annotations

from omnicx.hooks import Hooks
from omnicx.segments import engine
from omnicx.settings import Settings


def register(hooks: Hooks, settings: Settings) -> None:
    """Queue touched profiles from ingest and changes; run the queue and the timers."""
    del settings
    runner = engine.Engine(hooks)
    hooks.projectors.append(engine.project)
    hooks.on_change.append(engine.on_change)
    hooks.on_merge.append(engine.on_merge)
    hooks.on_erase.append(engine.on_erase)
    hooks.timer(engine.RECHECK_TIMER, runner.recheck)
    hooks.timer(engine.RECOMPUTE_TIMER, runner.recompute_timer)
    hooks.jobs.append(runner.run_queue)
