"""Roles, write keys and staff tokens.

Secrets are random (256 bits) and shown once; only their SHA-256 is stored. A fast hash is right
here: a slow password hash protects guessable secrets, and these are not guessable.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.models import ApiToken, Source, User
from omnicx.db import dialect_insert, utcnow


class Role(StrEnum):
    admin = "admin"
    marketer = "marketer"
    agent = "agent"
    store_associate = "store_associate"
    analyst = "analyst"


class SourceKind(StrEnum):
    web = "web"
    ios = "ios"
    android = "android"
    server = "server"
    pos = "pos"
    support = "support"


@dataclass(frozen=True, slots=True)
class Staff:
    """Who is calling the staff API."""

    token_id: int | None
    name: str
    role: Role
    store_id: str | None
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class SourceRef:
    id: int
    name: str
    kind: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_source(
    session: AsyncSession, *, name: str, kind: SourceKind
) -> tuple[Source, str]:
    write_key = "wk_" + secrets.token_urlsafe(32)
    source = Source(name=name, kind=kind.value, write_key_hash=hash_secret(write_key))
    session.add(source)
    await session.flush()
    return source, write_key


async def create_token(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    store_id: str | None = None,
    user_id: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token; with ``user_id`` it acts for that staff user and dies with the user."""
    if role is Role.store_associate and not store_id:
        raise ValueError("a store associate token needs a store id")
    token = "ocx_" + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        role=role.value,
        store_id=store_id,
        token_hash=hash_secret(token),
        user_id=user_id,
    )
    session.add(row)
    await session.flush()
    return row, token


async def ensure_source(session: AsyncSession, *, name: str, kind: SourceKind) -> SourceRef:
    """The source of that name, created (with a key nobody sees) if missing."""
    row = (
        await session.execute(
            select(Source.id, Source.name, Source.kind).where(Source.name == name)
        )
    ).first()
    if row is not None:
        return SourceRef(row.id, row.name, row.kind)
    source, _key = await create_source(session, name=name, kind=kind)
    return SourceRef(source.id, source.name, source.kind)


async def get_source_by_write_key(session: AsyncSession, *, write_key: str) -> SourceRef | None:
    row = (
        await session.execute(
            select(Source.id, Source.name, Source.kind).where(
                Source.write_key_hash == hash_secret(write_key), Source.disabled_at.is_(None)
            )
        )
    ).first()
    return SourceRef(row.id, row.name, row.kind) if row else None


async def get_staff_by_token(session: AsyncSession, *, token: str) -> Staff | None:
    """The token's staff, or None when it is unknown, revoked or its user was deleted."""
    live_user = select(User.id).where(User.id == ApiToken.user_id, User.deleted_at.is_(None))
    row = (
        await session.execute(
            select(ApiToken).where(
                ApiToken.token_hash == hash_secret(token),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.user_id.is_(None), live_user.exists()),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return Staff(
        token_id=row.id,
        name=row.name,
        role=Role(row.role),
        store_id=row.store_id,
        user_id=row.user_id,
    )


async def source_names(session: AsyncSession, *, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    result = await session.execute(select(Source.id, Source.name).where(Source.id.in_(ids)))
    return {row.id: row.name for row in result}


async def internal_source(session: AsyncSession, *, name: str) -> SourceRef:
    """A source OmniCX itself writes through (its own events, imports); its key is never shown."""
    await session.execute(
        dialect_insert(session, Source)
        .values(
            name=name,
            kind=SourceKind.server.value,
            write_key_hash=hash_secret(secrets.token_urlsafe(32)),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = (
        await session.execute(
            select(Source.id, Source.name, Source.kind).where(Source.name == name)
        )
    ).one()
    return SourceRef(row.id, row.name, row.kind)
