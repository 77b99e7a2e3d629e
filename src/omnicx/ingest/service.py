"""Turning tracking-API requests into stored events.

Decisions where the Segment spec leaves room:

- a missing ``messageId`` gets a fresh one (the event is then not deduplicated on resend);
- ``timestamp`` is ``receivedAt − (sentAt − originalTimestamp)`` when both are sent (client
  clocks are corrected), else the event's own ``timestamp`` (server libraries), else
  ``receivedAt``; ``receivedAt`` is always kept;
- events are not dropped silently: a batch stores its valid events and answers with the index,
  ``messageId``, code and reason of each refused one; a batch with nothing valid is a 400;
- the activity channel of an event is the kind of its source (web, ios, android, server, pos,
  support).
"""

from __future__ import annotations

import base64
import binascii
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from omnicx import metrics
from omnicx.auth.service import SourceRef, get_source_by_write_key
from omnicx.db import Database
from omnicx.errors import ApiError
from omnicx.hooks import Hooks
from omnicx.ingest.schemas import EventIn, IngestResult, Rejected
from omnicx.profiles.record import IncomingEvent, Outcome, record_events
from omnicx.settings import Settings


@dataclass(slots=True)
class Checked:
    """An item that passed validation, or the reason it did not."""

    index: int
    message_id: str | None
    event: IncomingEvent | None = None
    code: str | None = None
    message: str | None = None


def decode_body(raw: bytes, encoding: str | None, limit: int) -> Any:
    """Gunzip (bounded, so a small bomb cannot inflate past ``limit``) and parse JSON."""
    if encoding and encoding.lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise ApiError(400, "invalid_gzip", f"body is not valid gzip: {exc}") from exc
    elif encoding and encoding.lower() not in ("identity", ""):
        raise ApiError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported"
        )
    if len(raw) > limit:
        raise ApiError(413, "payload_too_large", f"body is larger than {limit} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from exc


def write_key_from(authorization: str | None, body: Any) -> str:
    """Segment's HTTP Basic (write key as user name), else ``writeKey`` in the body."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ApiError(401, "invalid_write_key", "malformed Basic credentials") from exc
            key = user.partition(":")[0]
            if key:
                return key
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str) and body["writeKey"]:
        return str(body["writeKey"])
    raise ApiError(401, "missing_write_key", "send the write key as the Basic user name")


async def authenticate_source(db: Database, write_key: str) -> SourceRef:
    async with db.session() as session:
        source = await get_source_by_write_key(session, write_key=write_key)
    if source is None:
        raise ApiError(401, "invalid_write_key", "the write key is unknown or disabled")
    return source


def check_event(
    index: int,
    item: Any,
    *,
    type_hint: str | None,
    batch_context: dict[str, Any],
    batch_sent_at: datetime | None,
    received_at: datetime,
    max_bytes: int,
) -> Checked:
    message_id = _message_id_of(item)
    if not isinstance(item, dict):
        return Checked(index, None, code="invalid_event", message="an event must be a JSON object")
    size = len(orjson.dumps(item))
    if size > max_bytes:
        return Checked(
            index, message_id, code="event_too_large", message=f"{size} bytes > {max_bytes}"
        )
    if type_hint is not None:
        item = {**item, "type": type_hint}
    try:
        parsed = EventIn.model_validate(item)
    except ValidationError as exc:
        return Checked(index, message_id, code="invalid_event", message=explain(exc))
    context = {**batch_context, **parsed.context} if batch_context else parsed.context
    sent_at = parsed.sentAt or batch_sent_at
    if parsed.originalTimestamp is not None and sent_at is not None:
        timestamp = received_at - (sent_at - parsed.originalTimestamp)
    else:
        timestamp = parsed.timestamp or parsed.originalTimestamp or received_at
    properties = dict(parsed.properties)
    if parsed.type in ("page", "screen"):
        if parsed.category is not None:
            properties.setdefault("category", parsed.category)
    if parsed.type == "group":
        properties["group_id"] = parsed.groupId
    event = IncomingEvent(
        message_id=parsed.messageId or str(uuid.uuid4()),
        type=parsed.type,
        event=parsed.event if parsed.type == "track" else parsed.name,
        user_id=parsed.userId,
        anonymous_id=parsed.anonymousId,
        previous_id=parsed.previousId,
        timestamp=timestamp,
        sent_at=sent_at,
        original_timestamp=parsed.originalTimestamp,
        properties=properties,
        traits=parsed.traits,
        context=context,
    )
    return Checked(index, event.message_id, event=event)


def _message_id_of(item: Any) -> str | None:
    if isinstance(item, dict):
        mid = item.get("messageId")
        if isinstance(mid, str | int) and not isinstance(mid, bool):
            return str(mid)[:200]
    return None


def explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


async def ingest(
    db: Database,
    hooks: Hooks,
    *,
    source: SourceRef,
    checked: Sequence[Checked],
    received_at: datetime,
) -> IngestResult:
    """Store the valid events of one request in one transaction and report on every item."""
    valid = [c for c in checked if c.event is not None]
    outcomes: list[Outcome] = []
    if valid:
        events = [c.event for c in valid if c.event is not None]
        settings: Settings = db.settings
        outcomes = await db.transaction(
            lambda session: record_events(
                session,
                source_id=source.id,
                channel=source.kind,
                events=events,
                settings=settings,
                received_at=received_at,
                hooks=hooks,
            )
        )
    result = IngestResult()
    for c in checked:
        if c.event is None:
            result.rejected.append(
                Rejected(
                    index=c.index,
                    messageId=c.message_id,
                    code=c.code or "invalid_event",
                    message=c.message or "",
                )
            )
    for c, outcome in zip(valid, outcomes, strict=True):
        if outcome.status == "stored":
            result.accepted += 1
        elif outcome.status == "duplicate":
            result.duplicates += 1
        else:
            result.rejected.append(
                Rejected(
                    index=c.index,
                    messageId=c.message_id,
                    code=outcome.code or "rejected",
                    message=outcome.message or "",
                )
            )
    result.rejected.sort(key=lambda r: r.index)
    metrics.ingested(result.accepted, result.duplicates, (r.code for r in result.rejected))
    return result
