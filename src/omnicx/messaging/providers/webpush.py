"""Web push (RFC 8030) to the push service behind a browser subscription, authenticated with
VAPID (RFC 8292), the payload encrypted as ``aes128gcm`` (RFC 8188/8291).

``py_vapid`` signs the VAPID JWT and ``http_ece`` encrypts; we do not use ``pywebpush``, which
only wraps those two and sends with requests/aiohttp: here the shared ``httpx.AsyncClient`` sends.

Choices where the specs leave room:

- The payload is UTF-8 JSON ``{"title", "body", "url", "image", "tag", "data", "message_id"}``
  (absent fields left out); the service worker shows it. It must fit one 4096-byte record.
- ``TTL`` and ``Urgency`` come from the content; a collapse key becomes the ``Topic`` header
  (used as is when it is already ≤ 32 base64url characters, else a hash of it).
- A VAPID token is signed per push-service origin and reused for half its lifetime (default 12h),
  so a burst of sends signs once.
- 404/410 (subscription gone) and subscriptions without usable keys or URL prune the
  subscription; 413 and other 4xx fail the message; 401/403 (VAPID refused) are configuration;
  429/5xx are transient.
- Endpoints come from browsers, so only ``https`` ones are sent to unless the config allows plain
  HTTP (local testing); which hosts are acceptable is for the code storing subscriptions to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from omnicx.messaging.providers._http import request, retry_after
from omnicx.messaging.providers.base import (
    Channel,
    ConfigError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    PushContent,
    SendResult,
    TransientError,
)
from omnicx.settings import Settings

# One aes128gcm record of 4096 bytes: header (16 salt + 4 rs + 1 + 65 key id), 16 tag, 1 delimiter.
MAX_PAYLOAD = 4096 - 86 - 16 - 1
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def load_vapid_key(text: str) -> Vapid02:
    """A VAPID key from PEM, or base64url raw (32 bytes, as web-push tools print it) or DER."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError("not an EC key")
            vapid = Vapid02(key)
        else:
            vapid = Vapid02.from_string(text)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a VAPID private key: {exc}") from None
    if not isinstance(vapid.private_key.curve, ec.SECP256R1):
        raise ValueError("a VAPID key is on the P-256 curve")
    return vapid


class VapidConfig(BaseModel):
    """The application server's VAPID identity (``OMNICX_VAPID_*``)."""

    model_config = ConfigDict(frozen=True)

    private_key: SecretStr = Field(
        title="VAPID private key",
        description="P-256 private key, PEM or base64url (as `web-push generate-vapid-keys`).",
    )
    subject: str = Field(
        title="VAPID subject",
        description="mailto: or https: contact the push services can reach you at.",
    )
    token_seconds: int = Field(
        12 * 3600,
        ge=60,
        le=24 * 3600,
        title="Token lifetime",
        description="Seconds a VAPID token is valid (push services accept at most 24h).",
    )
    allow_http: bool = Field(
        False,
        title="Allow plain-HTTP endpoints",
        description="Send to http:// subscription endpoints too (local testing only).",
    )

    @field_validator("private_key")
    @classmethod
    def _loads(cls, value: SecretStr) -> SecretStr:
        load_vapid_key(value.get_secret_value())
        return value

    @field_validator("subject")
    @classmethod
    def _contact(cls, value: str) -> str:
        if not re.match(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", value):
            raise ValueError("the VAPID subject is a mailto: address or an https: URL")
        return value

    @property
    def public_key(self) -> str:
        """The base64url public key browsers subscribe with (``applicationServerKey``)."""
        vapid = load_vapid_key(self.private_key.get_secret_value())
        point = vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url_encode(point)

    @classmethod
    def from_settings(cls, settings: Settings) -> VapidConfig | None:
        """The configured key, or ``None`` when ``OMNICX_VAPID_PRIVATE_KEY`` is unset."""
        if settings.vapid_private_key is None:
            return None
        try:
            return cls(private_key=settings.vapid_private_key, subject=settings.vapid_subject)
        except ValidationError as exc:
            raise ConfigError(f"OMNICX_VAPID_*: {exc}") from exc


class WebPushProvider:
    """Sends :class:`PushContent` to a ``webpush`` address (endpoint + ``data["keys"]``)."""

    channel: ClassVar[Channel] = Channel.webpush
    name: ClassVar[str] = "webpush"

    def __init__(
        self,
        config: VapidConfig,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        self._vapid = load_vapid_key(config.private_key.get_secret_value())
        self._tokens: dict[str, tuple[str, float]] = {}  # audience -> (Authorization, exp)

    async def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, PushContent) or message.to.kind != "webpush":
            raise PermanentError("webpush sends push content to a web-push subscription")
        endpoint = message.to.value
        parts = urlsplit(endpoint)
        schemes = ("https", "http") if self.config.allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise PermanentError(f"not a push endpoint: {endpoint!r}", prune=True)
        body = self._encrypt(_payload(message, content), message.to.data.get("keys"))
        headers = {
            "Authorization": self._authorization(f"{parts.scheme}://{parts.netloc}"),
            "TTL": str(max(0, content.ttl_seconds)),
            "Urgency": content.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        if content.collapse_key:
            headers["Topic"] = _topic(content.collapse_key)
        response = await request(
            self._client, "POST", endpoint, service="webpush", content=body, headers=headers
        )
        if response.status_code in (200, 201, 202):
            return SendResult(provider_message_id=response.headers.get("location"))
        raise _error(response)

    def _encrypt(self, payload: bytes, keys: Any) -> bytes:
        if len(payload) > MAX_PAYLOAD:
            raise PermanentError(f"web push payload is {len(payload)} bytes; {MAX_PAYLOAD} fit")
        try:
            p256dh = b64url_decode(keys["p256dh"])
            auth = b64url_decode(keys["auth"])
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise PermanentError(f"subscription keys unusable: {exc!r}", prune=True) from None
        if len(auth) != 16:
            raise PermanentError("subscription auth secret is not 16 bytes", prune=True)
        sender = ec.generate_private_key(ec.SECP256R1())  # fresh per message, as RFC 8291 asks
        encrypted: bytes = http_ece.encrypt(
            payload, private_key=sender, dh=p256dh, auth_secret=auth, version="aes128gcm"
        )
        return encrypted

    def _authorization(self, audience: str) -> str:
        now = self._clock()
        cached = self._tokens.get(audience)
        if cached and cached[1] - now > self.config.token_seconds / 2:
            return cached[0]
        exp = int(now) + self.config.token_seconds
        claims = {"aud": audience, "exp": exp, "sub": self.config.subject}
        header: str = self._vapid.sign(claims)["Authorization"]
        self._tokens[audience] = (header, exp)
        return header


def configured(settings: Settings) -> bool:
    """Whether the settings turn this provider on (cheap: nothing is loaded)."""
    return settings.vapid_private_key is not None


def build(settings: Settings, http: httpx.AsyncClient) -> WebPushProvider:
    """The provider the settings describe; :class:`ConfigError` if they are incomplete."""
    config = VapidConfig.from_settings(settings)
    if config is None:
        raise ConfigError("OMNICX_VAPID_PRIVATE_KEY is not set")
    return WebPushProvider(config, http)


def _payload(message: OutboundMessage, content: PushContent) -> bytes:
    fields: dict[str, Any] = {
        "title": content.title,
        "body": content.body,
        "url": content.deep_link,
        "image": content.image_url,
        "tag": content.collapse_key,
        "data": content.data or None,
        "message_id": message.id,
    }
    present = {k: v for k, v in fields.items() if v is not None}
    return json.dumps(present, ensure_ascii=False, separators=(",", ":")).encode()


def _topic(collapse_key: str) -> str:
    if _TOPIC.match(collapse_key):
        return collapse_key
    return b64url_encode(hashlib.sha256(collapse_key.encode()).digest())[:32]


def _error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    text = f"webpush {status}: {response.text[:200] or response.reason_phrase}"
    if status in (404, 410):
        return PermanentError(text, prune=True)
    if status == 429 or status >= 500:
        return TransientError(text, retry_after=retry_after(response))
    if status in (401, 403):
        return ConfigError(text)
    return PermanentError(text)
