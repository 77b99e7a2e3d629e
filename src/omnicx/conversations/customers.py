"""Who is writing: the widget's and app's identity check, and identity resolution of every
customer message through the ingest path.

Widget and app (identity verification, as Intercom and Chatwoot do it): the page sends its
source's write key and either

- ``user_id`` with ``user_hash = hex(HMAC-SHA256(key, user_id))``, computed by the brand's
  backend for the signed-in customer (``key`` is ``OMNICX_INAPP_SECRET``, or else derived from
  ``OMNICX_SECRET_KEY``: the same key as the in-app client's, so one value serves both); a hash
  that does not match is refused (401); such a session is *verified*;
- or ``anonymous_id`` (the browser's analytics id) for a visitor who has not signed in. An
  anonymous id that already belongs to a signed-in customer's profile is refused: only a
  verified session may read that thread;
- or ``thread`` = a signed link back into one conversation (see :mod:`.outbound`).

With both ``user_id`` and ``anonymous_id`` (a visitor who just signed in), the message's event
carries both, so identity resolution merges the anonymous profile into the customer's and her
conversation follows (:func:`omnicx.conversations.on_merge`).

Every customer message is also a ``Conversation Message Sent`` track event on her timeline,
stored through :func:`omnicx.profiles.record.record_events` like any ingested event: that is
what resolves (or creates) her profile from a user id, anonymous id, phone number or email, and
what journeys and segments see.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.auth.service import get_source_by_write_key, internal_source
from omnicx.conversations import outbound
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.messaging.signing import inapp_key, user_hash
from omnicx.profiles import service as profiles
from omnicx.profiles.record import IncomingEvent, record_events, rules_from
from omnicx.settings import Settings

MESSAGE_EVENT = "Conversation Message Sent"
INBOUND_SOURCE = "omnicx-conversations"


@dataclass(frozen=True)
class WidgetUser:
    source_id: int
    source_kind: str
    user_id: str | None
    anonymous_id: str | None
    verified: bool
    profile_id: str | None  # None until her first message creates the profile
    conversation_id: int | None = None  # set by a thread link


async def authenticate(db: Database, params: dict[str, str | None], now: datetime) -> WidgetUser:
    """Check the widget's or app's credentials; raises 401 on anything forged or unknown."""
    settings = db.settings
    write_key = params.get("write_key")
    user_id, given, anonymous_id = (
        params.get("user_id"),
        params.get("user_hash"),
        params.get("anonymous_id"),
    )
    thread = params.get("thread")
    if not write_key:
        raise ApiError(401, "unauthenticated", "a write key is required")
    for value in (user_id, anonymous_id):
        if value is not None and (not value.strip() or len(value) > 200):
            raise ApiError(422, "invalid_identity", "ids are 1 to 200 characters")
    rules = rules_from(settings)
    async with db.session() as session:
        source = await get_source_by_write_key(session, write_key=write_key)
        if source is None:
            raise ApiError(401, "unauthenticated", "unknown write key")
        if thread:
            claim = outbound.read_token(settings, "t", thread, now)
            if claim is None:
                raise ApiError(401, "unauthenticated", "the conversation link is not valid")
            found = await profiles.get_by_external_id(
                session, external_id=claim.profile_id, rules=rules
            )
            if found is None:
                raise ApiError(401, "unauthenticated", "the conversation link is not valid")
            return WidgetUser(
                source.id, source.kind, None, None, False, found.id, claim.conversation_id
            )
        if user_id:
            if not given or not hmac.compare_digest(
                user_hash(inapp_key(settings), user_id), given.lower()
            ):
                raise ApiError(401, "unauthenticated", "the user hash does not match the user id")
            found = await profiles.get_by_external_id(
                session, external_id=f"user_id:{user_id}", rules=rules
            )
            return WidgetUser(
                source.id, source.kind, user_id, anonymous_id, True, found.id if found else None
            )
        if not anonymous_id:
            raise ApiError(401, "unauthenticated", "a user id and hash, or an anonymous id")
        found = await profiles.get_by_external_id(
            session, external_id=f"anonymous_id:{anonymous_id}", rules=rules
        )
        if found is not None:
            read = await profiles.read(session, profile=found)
            if any(i.type == "user_id" for i in read.identities):
                raise ApiError(
                    401,
                    "verification_required",
                    "this visitor has signed in: identify with the user id and hash",
                )
        return WidgetUser(
            source.id, source.kind, None, anonymous_id, False, found.id if found else None
        )


async def resolve(
    session: AsyncSession,
    settings: Settings,
    hooks: Hooks,
    *,
    source_id: int | None,
    channel: str,
    now: datetime,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    traits: dict[str, Any] | None = None,
    message_id: str | None = None,
    properties: dict[str, Any] | None = None,
) -> str:
    """Record the ``Conversation Message Sent`` event and return the profile it resolved to
    (created if new, merged if it links two)."""
    if source_id is None:
        source_id = (await internal_source(session, name=INBOUND_SOURCE)).id
    event = IncomingEvent(
        message_id=message_id or f"conversation.{uuid.uuid4().hex}",
        type="track",
        event=MESSAGE_EVENT,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=now,
        properties={"channel": channel, **(properties or {})},
        context={"traits": traits} if traits else {},
    )
    (outcome,) = await record_events(
        session,
        source_id=source_id,
        channel=channel,
        events=[event],
        settings=settings,
        received_at=now,
        hooks=hooks,
    )
    if outcome.profile_id is None:
        raise ApiError(
            403, outcome.code or "refused", outcome.message or "this sender cannot be reached"
        )
    return outcome.profile_id
