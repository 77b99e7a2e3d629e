"""Every signature messaging makes: links in messages, webhook bodies, in-app user hashes.

Each use has its own key derived from ``OMNICX_SECRET_KEY`` (HMAC of a purpose label), so a
signature made for one purpose never verifies for another, unless an explicit secret is
configured for it (``OMNICX_WEBHOOK_SECRET``, ``OMNICX_INAPP_SECRET``: these are shared with
other systems, so they can be rotated without touching the secret key).

- Links: ``/m/u/{id}.{sig}`` (unsubscribe), ``/m/o/{id}.{sig}.gif`` (open pixel),
  ``/m/c/{id}.{sig}?url=…`` (click; the signature covers the URL, so it is no open redirect).
  Truncated to 128 bits: forging one still takes 2^128 guesses.
- Webhooks: ``X-OmniCX-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
  (the Stripe scheme: the timestamp lets receivers refuse replays).
- In-app: ``user_hash = hex HMAC-SHA256(inapp secret, user_id)``, computed by the brand's own
  backend and handed to its app (Intercom's identity verification).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from omnicx.db import row_id
from omnicx.settings import Settings


def derive(settings: Settings, purpose: str) -> bytes:
    return hmac.new(
        settings.secret_key.get_secret_value().encode(), purpose.encode(), hashlib.sha256
    ).digest()


def _sig(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Links:
    """Signed per-message URLs under ``OMNICX_PUBLIC_URL``."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.public_url.rstrip("/")
        self._key = derive(settings, "omnicx.messaging.links")

    def token(self, purpose: str, message_id: int, extra: str = "") -> str:
        return f"{message_id}.{_sig(self._key, f'{purpose}:{message_id}:{extra}')}"

    def unsubscribe_url(self, message_id: int) -> str:
        return f"{self.base}/m/u/{self.token('u', message_id)}"

    def open_url(self, message_id: int) -> str:
        return f"{self.base}/m/o/{self.token('o', message_id)}.gif"

    def click_url(self, message_id: int, url: str) -> str:
        return f"{self.base}/m/c/{self.token('c', message_id, url)}?url={quote(url, safe='')}"

    def verify(self, purpose: str, token: str, extra: str = "") -> int | None:
        """The message id a token was made for, or ``None`` if it is not ours."""
        head, _, sig = token.partition(".")
        message_id = row_id(head)
        if message_id is None:
            return None
        good = self.token(purpose, message_id, extra)
        return message_id if hmac.compare_digest(good, token) else None

    def is_ours(self, url: str) -> bool:
        return url.startswith(f"{self.base}/m/")


def webhook_key(settings: Settings) -> bytes:
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    return derive(settings, "omnicx.webhook")


def webhook_signature(key: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def inapp_key(settings: Settings) -> bytes:
    if settings.inapp_secret is not None:
        return settings.inapp_secret.get_secret_value().encode()
    return derive(settings, "omnicx.inapp")


def user_hash(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()


def address_hash(settings: Settings, kind: str, value: str) -> str:
    """The key of a suppressed address (normalised before hashing by the caller)."""
    key = derive(settings, "omnicx.messaging.suppression")
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
