"""The conversations a console page shows beside a customer (the 360, the store console)."""

from __future__ import annotations

from typing import Any

from omnicx.auth.service import Staff
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.hooks import Hooks


async def of_profile(db: Database, profile_id: str) -> list[dict[str, Any]]:
    """The customer's recent conversations with their last messages, newest first."""
    del db, profile_id
    return []


async def add_note(db: Database, hooks: Hooks, staff: Staff, profile_id: str, body: str) -> None:
    """An internal note on the customer's thread (opened by staff when none is open)."""
    del db, hooks, staff, profile_id, body
    raise ApiError(503, "conversations_unavailable", "conversations are not installed")
