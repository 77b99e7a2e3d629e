"""``/v1/*``: the Segment HTTP tracking API, so unmodified Segment and RudderStack SDKs work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from omnicx.db import Db, utcnow
from omnicx.errors import ApiError, JsonResponse
from omnicx.hooks import AppHooks, Hooks
from omnicx.ingest.schemas import BatchIn, EventIn, IngestResult
from omnicx.ingest.service import (
    Checked,
    authenticate_source,
    check_event,
    decode_body,
    explain,
    ingest,
    write_key_from,
)

router = APIRouter(prefix="/v1", tags=["ingest"])

_SINGLE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": EventIn.model_json_schema()}},
    }
}
_BATCH_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": BatchIn.model_json_schema()}},
    }
}


async def _read(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return decode_body(b"".join(chunks), request.headers.get("content-encoding"), limit)


async def _single(request: Request, db: Db, hooks: Hooks, event_type: str) -> JsonResponse:
    settings = db.settings
    received_at = utcnow()
    body = await _read(request, settings.max_event_bytes)
    source = await authenticate_source(
        db, write_key_from(request.headers.get("authorization"), body)
    )
    checked = check_event(
        0,
        body,
        type_hint=event_type,
        batch_context={},
        batch_sent_at=None,
        received_at=received_at,
        max_bytes=settings.max_event_bytes,
    )
    if checked.event is None:
        status = 413 if checked.code == "event_too_large" else 400
        raise ApiError(status, checked.code or "invalid_event", checked.message or "")
    result = await ingest(db, hooks, source=source, checked=[checked], received_at=received_at)
    if result.rejected:
        refused = result.rejected[0]
        status = 403 if refused.code == "identity_suppressed" else 400
        raise ApiError(status, refused.code, refused.message)
    return JsonResponse(result.model_dump())


def _make_single(event_type: str) -> Any:
    async def endpoint(request: Request, db: Db, hooks: AppHooks) -> JsonResponse:
        return await _single(request, db, hooks, event_type)

    endpoint.__doc__ = f"Record a {event_type} call (Segment spec); 200 means committed."
    endpoint.__name__ = f"ingest_{event_type}"
    return endpoint


for _type in ("track", "identify", "page", "screen", "group", "alias"):
    router.add_api_route(
        f"/{_type}",
        _make_single(_type),
        methods=["POST"],
        response_model=IngestResult,
        openapi_extra=_SINGLE_DOC,
        name=f"ingest_{_type}",
    )


@router.post("/batch", response_model=IngestResult, openapi_extra=_BATCH_DOC)
async def ingest_batch(request: Request, db: Db, hooks: AppHooks) -> JsonResponse:
    """Record up to 2,500 events; valid ones are stored, refused ones listed with reasons."""
    settings = db.settings
    received_at = utcnow()
    body = await _read(request, settings.max_batch_bytes)
    source = await authenticate_source(
        db, write_key_from(request.headers.get("authorization"), body)
    )
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise ApiError(400, "invalid_batch", "body must be an object with a 'batch' list")
    items: list[Any] = body["batch"]
    if len(items) > settings.max_batch_events:
        raise ApiError(
            413, "batch_too_large", f"{len(items)} events > {settings.max_batch_events} per batch"
        )
    try:
        envelope = BatchIn.model_validate({**body, "batch": []})
    except ValidationError as exc:
        raise ApiError(400, "invalid_batch", explain(exc)) from exc
    checked: list[Checked] = [
        check_event(
            i,
            item,
            type_hint=None,
            batch_context=envelope.context,
            batch_sent_at=envelope.sentAt,
            received_at=received_at,
            max_bytes=settings.max_event_bytes,
        )
        for i, item in enumerate(items)
    ]
    result = await ingest(db, hooks, source=source, checked=checked, received_at=received_at)
    if items and result.accepted == 0 and result.duplicates == 0:
        raise ApiError(
            400,
            "invalid_batch",
            "no event in the batch was accepted",
            rejected=[r.model_dump() for r in result.rejected],
        )
    return JsonResponse(result.model_dump())
