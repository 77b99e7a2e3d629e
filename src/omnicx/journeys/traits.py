"""The ``update_traits`` node: set profile traits as of the run's time.

Profiles has no service that sets traits outside ingest, so this writes ``profiles.traits`` and
``profiles.trait_times`` itself, with ingest's rule: a trait changes only if the new value's time
is not older than the one it holds (``trait_times`` is ISO text, compared as strings). The row
is locked first on PostgreSQL (ingest locks it the same way), and the change is announced
through ``hooks.changed`` so segments built on those traits are re-evaluated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.hooks import Hooks
from omnicx.profiles.models import Profile
from omnicx.profiles.record import iso


async def set_traits(
    session: AsyncSession, *, profile_id: str, values: dict[str, Any], at: datetime, hooks: Hooks
) -> list[str]:
    """Set ``values`` on the profile as of ``at``; returns the trait names that changed."""
    row = (
        await session.execute(
            select(Profile.traits, Profile.trait_times)
            .where(Profile.id == profile_id, Profile.erased_at.is_(None))
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        return []
    traits, times = dict(row.traits or {}), dict(row.trait_times or {})
    stamp = iso(at)
    changed = []
    for key, value in values.items():
        if stamp >= times.get(key, "") and (key not in traits or traits[key] != value):
            traits[key], times[key] = value, stamp
            changed.append(key)
    if changed:
        profiles = cast(Table, Profile.__table__)
        await session.execute(
            update(profiles)
            .where(profiles.c.id == profile_id)
            .values(traits=traits, trait_times=times)
        )
        await hooks.changed(session, {profile_id: {"traits": sorted(changed)}})
    return sorted(changed)
