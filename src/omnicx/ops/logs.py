"""Structured logs: one JSON object a line, each with the id of the request it is part of.

A request's id is its ``X-Request-ID`` header when a proxy set one (letters, digits, ``-_.:``,
at most 128 characters), else a new random one; it is echoed in the response's ``X-Request-ID``
and stamped on every log line written while the request runs (a :mod:`contextvars` variable, so
it follows the request through ``await``). ``OMNICX_LOG_FORMAT=text`` gives plain lines for a
terminal.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from omnicx.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("omnicx_request_id", default=None)
VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        return f"{line} [{request_id}]" if request_id else line


def configure(settings: Settings) -> None:
    """Send every log (OmniCX's, uvicorn's, SQLAlchemy's) to stderr in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for name in ("sqlalchemy", "aiosqlite", "asyncio"):  # their debug output is per statement
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    # Requests are logged once, by the request middleware, with their id and duration.
    logging.getLogger("uvicorn.access").disabled = True


def request_id_from(header: str | None) -> str | None:
    return header if header and VALID_ID.match(header) else None
