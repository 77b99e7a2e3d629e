"""Garbage collection in long-running processes (``omnicx serve``, ``omnicx worker``).

A server holds a large heap that lives as long as the process: the imported libraries, the
app's routes and schemas, SQLAlchemy's mappers. Python's oldest-generation collection walks all
of it; with a thousand open WebSockets allocating as they go, it ran every few seconds and
paused the event loop for 0.1–0.7 s each time (``bench/chat.py``: the p99 of live delivery on
SQLite was that pause). :func:`settle`, once start-up is done, moves everything alive to a
permanent generation the collector no longer walks; what is allocated later is collected as
before.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect start-up's garbage, then exempt what is left from later collections."""
    gc.collect()
    gc.freeze()
