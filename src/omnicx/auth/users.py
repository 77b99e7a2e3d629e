"""Staff users: the people who log in to the console.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
profile); a hash made with older parameters is upgraded on the next successful login. Emails are
kept trimmed and lower-cased, so logins are case-insensitive. Deleting a user keeps the row, so
the audit trail ("who collected this pickup") still names a person, but the user can no longer
log in, existing console sessions end on their next request, and every API token created for
the user (``api_tokens.user_id``) is refused with 401.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.models import User
from omnicx.auth.service import Role, Staff
from omnicx.db import utcnow

MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Checked against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("omnicx-no-such-user")


class UserError(ValueError):
    """A user cannot be created or changed as asked (the message says why)."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or email.startswith("@"):
        raise UserError(f"not an email address: {email!r}")
    return email


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


async def create(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: Role,
    name: str | None = None,
    store_id: str | None = None,
) -> User:
    """A new staff user; a store associate needs its store."""
    email = normalise_email(email)
    if role is Role.store_associate and not store_id:
        raise UserError("a store associate needs a store id")
    user = User(
        email=email,
        name=(name or email.split("@")[0]).strip()[:200],
        role=role.value,
        store_id=store_id or None,
        password_hash=hash_password(password),
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError as exc:
        raise UserError(f"a user {email!r} already exists") from exc
    return user


async def get(session: AsyncSession, *, user_id: int) -> User | None:
    """A live (not deleted) user by id."""
    user = await session.get(User, user_id)
    return user if user is not None and user.deleted_at is None else None


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    try:
        email = normalise_email(email)
    except UserError:
        return None
    stmt = select(User).where(User.email == email, User.deleted_at.is_(None))
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_all(session: AsyncSession) -> list[User]:
    stmt = select(User).where(User.deleted_at.is_(None)).order_by(User.email)
    return list((await session.execute(stmt)).scalars())


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None (same answer for either mistake)."""
    user = await get_by_email(session, email=email)
    if user is None:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


async def set_password(session: AsyncSession, *, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    await session.flush()


async def delete(session: AsyncSession, *, user: User) -> None:
    """Lock the user out: no login, no session, none of its API tokens."""
    user.deleted_at = utcnow()
    await session.flush()


def staff_of(user: User) -> Staff:
    """The user as the role rules see it (same shape as a token's staff)."""
    return Staff(
        token_id=None,
        name=user.name,
        role=Role(user.role),
        store_id=user.store_id,
        user_id=user.id,
    )
