"""Mobile push to Apple devices through APNs: HTTP/2 with token-based authentication.

A send is ``POST {base_url}/3/device/{token}`` over HTTP/2 with ``authorization: bearer <JWT>``,
the JWT signed ES256 with the team's .p8 key (header ``kid`` = key ID, claims ``iss`` = team ID
and ``iat``). Apple wants the token refreshed no more often than every 20 minutes and no less
often than every 60: we sign a new one every 50.

The client must speak HTTP/2 (APNs refuses HTTP/1.1): build it with :func:`http2_client` or
``httpx.AsyncClient(http2=True)`` (the ``h2`` package, from ``httpx[http2]``).

Choices where Apple leaves room:

- ``apns-push-type`` is ``alert`` (title or body present) or else ``background`` (with
  ``content-available`` and priority 5). ``apns-priority`` is 10 for high and normal urgency, 5
  for low and very low. ``apns-expiration`` is now + TTL (0: deliver now or never).
  ``apns-collapse-id`` is the collapse key (hashed when over Apple's 64 bytes). ``apns-id`` is a
  UUID derived from the idempotency key, so every attempt of one message carries the same id.
- The payload is ``aps`` (alert title/body, ``sound: default`` for high urgency,
  ``mutable-content`` when there is an image) beside the content's data, ``deep_link``,
  ``image_url`` and ``omnicx_message_id``; at most 4096 bytes.
- 410, ``BadDeviceToken`` and ``Unregistered`` prune the token (and a token that is not hex is
  pruned without a request); ``DeviceTokenNotForTopic`` fails the message only, since a wrong
  topic setting would otherwise prune every token. ``InvalidProviderToken``, topic and
  certificate reasons are configuration; ``ExpiredProviderToken`` drops our JWT and is transient
  (the retry signs a fresh one), as are 429 and 5xx.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from omnicx.messaging.providers._http import json_body, request, retry_after
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

TOKEN_REFRESH_SECONDS = 50 * 60
MAX_PAYLOAD = 4096
PRUNE_REASONS = frozenset({"BadDeviceToken", "Unregistered"})
CONFIG_REASONS = frozenset(
    {
        "InvalidProviderToken",
        "MissingProviderToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "MissingTopic",
        "BadTopic",
        "TopicDisallowed",
    }
)
TRANSIENT_REASONS = frozenset({"ExpiredProviderToken", "IdleTimeout", "Shutdown"})
_DEVICE_TOKEN = re.compile(r"^[0-9a-fA-F]{16,400}$")
_APNS_ID_NAMESPACE = uuid.UUID("8f4a7a0e-5a59-4c3e-9b7e-0b1c6f1d2a11")


def http2_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that speaks HTTP/2, as APNs requires."""
    return httpx.AsyncClient(http2=True, **kwargs)


def load_signing_key(pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the APNs key does not load (expected the .p8 PEM): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the APNs key is not a P-256 EC key")
    return key


class ApnsConfig(BaseModel):
    """Apple developer team, auth key and app (``OMNICX_APNS_*``)."""

    model_config = ConfigDict(frozen=True)

    team_id: str = Field(min_length=1, title="Team ID", description="Apple developer team ID.")
    key_id: str = Field(min_length=1, title="Key ID", description="ID of the APNs auth key (.p8).")
    private_key: SecretStr = Field(
        title="Auth key", description="The .p8 auth key's PEM text (ES256, P-256)."
    )
    topic: str = Field(min_length=1, title="Topic", description="The app's bundle ID.")
    base_url: str = Field(
        "https://api.push.apple.com",
        title="APNs server",
        description="https://api.sandbox.push.apple.com for development builds.",
    )

    @field_validator("private_key")
    @classmethod
    def _loads(cls, value: SecretStr) -> SecretStr:
        load_signing_key(value.get_secret_value())
        return value

    @classmethod
    def from_settings(cls, settings: Settings) -> ApnsConfig | None:
        """The configured app, or ``None`` when ``OMNICX_APNS_TEAM_ID`` is unset."""
        if not settings.apns_team_id:
            return None
        pem: str | None = None
        if settings.apns_private_key is not None:
            pem = settings.apns_private_key.get_secret_value()
        elif settings.apns_private_key_file:
            try:
                pem = Path(settings.apns_private_key_file).read_text()
            except OSError as exc:
                raise ConfigError(f"OMNICX_APNS_PRIVATE_KEY_FILE: {exc}") from exc
        try:
            return cls.model_validate(
                {
                    "team_id": settings.apns_team_id,
                    "key_id": settings.apns_key_id,
                    "private_key": pem,
                    "topic": settings.apns_topic,
                    "base_url": settings.apns_base_url,
                }
            )
        except ValidationError as exc:
            raise ConfigError(f"OMNICX_APNS_*: {exc}") from exc


class ApnsProvider:
    """Sends :class:`PushContent` to an APNs device token (``push_token`` address)."""

    channel: ClassVar[Channel] = Channel.push
    name: ClassVar[str] = "apns"

    def __init__(
        self,
        config: ApnsConfig,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        self._key = load_signing_key(config.private_key.get_secret_value())
        self._base = config.base_url.rstrip("/")
        self._token: tuple[str, float] | None = None  # (JWT, issued at)

    async def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, PushContent) or message.to.kind != "push_token":
            raise PermanentError("apns sends push content to a push token")
        device = message.to.value
        if not _DEVICE_TOKEN.match(device):
            raise PermanentError("not an APNs device token (hex expected)", prune=True)
        payload = json.dumps(_payload(message, content), separators=(",", ":")).encode()
        if len(payload) > MAX_PAYLOAD:
            raise PermanentError(f"APNs payload is {len(payload)} bytes; {MAX_PAYLOAD} fit")
        now = self._clock()
        alert = bool(content.title or content.body)
        headers = {
            "authorization": f"bearer {self._provider_token(now)}",
            "apns-topic": self.config.topic,
            "apns-push-type": "alert" if alert else "background",
            "apns-priority": "10" if alert and content.urgency in ("high", "normal") else "5",
            "apns-expiration": str(
                int(now) + content.ttl_seconds if content.ttl_seconds > 0 else 0
            ),
            "apns-id": str(uuid.uuid5(_APNS_ID_NAMESPACE, message.idempotency_key)),
            "content-type": "application/json",
        }
        if content.collapse_key:
            headers["apns-collapse-id"] = _collapse_id(content.collapse_key)
        response = await request(
            self._client,
            "POST",
            f"{self._base}/3/device/{device}",
            service="apns",
            content=payload,
            headers=headers,
        )
        if response.status_code == 200:
            return SendResult(provider_message_id=response.headers.get("apns-id"))
        raise self._error(response)

    def _provider_token(self, now: float) -> str:
        if self._token is None or now - self._token[1] >= TOKEN_REFRESH_SECONDS:
            claims = {"iss": self.config.team_id, "iat": int(now)}
            token = jwt.encode(
                claims, self._key, algorithm="ES256", headers={"kid": self.config.key_id}
            )
            self._token = (token, now)
        return self._token[0]

    def _error(self, response: httpx.Response) -> ProviderError:
        reason = json_body(response).get("reason")
        status = response.status_code
        text = f"apns {status} {reason or response.reason_phrase}"
        if reason in ("ExpiredProviderToken", "InvalidProviderToken"):
            self._token = None  # sign a fresh one next time
        if status == 410 or reason in PRUNE_REASONS:
            return PermanentError(text, prune=True)
        if status == 429 or status >= 500 or reason in TRANSIENT_REASONS:
            return TransientError(text, retry_after=retry_after(response))
        if reason in CONFIG_REASONS or status in (401, 403):
            return ConfigError(text)
        return PermanentError(text)


def configured(settings: Settings) -> bool:
    """Whether the settings turn this provider on (cheap: nothing is loaded)."""
    return bool(settings.apns_team_id)


def build(settings: Settings, http: httpx.AsyncClient) -> ApnsProvider:
    """The provider the settings describe; :class:`ConfigError` if they are incomplete.
    ``http`` must speak HTTP/2 (see :func:`http2_client`)."""
    config = ApnsConfig.from_settings(settings)
    if config is None:
        raise ConfigError("OMNICX_APNS_TEAM_ID is not set")
    return ApnsProvider(config, http)


def _payload(message: OutboundMessage, content: PushContent) -> dict[str, Any]:
    aps: dict[str, Any]
    if content.title or content.body:
        aps = {"alert": {"title": content.title, "body": content.body}}
        if content.urgency == "high":
            aps["sound"] = "default"
        if content.image_url:
            aps["mutable-content"] = 1  # lets a notification service extension fetch the image
    else:
        aps = {"content-available": 1}
    extra: dict[str, Any] = {"deep_link": content.deep_link, "image_url": content.image_url}
    return {
        **content.data,
        **{k: v for k, v in extra.items() if v is not None},
        "omnicx_message_id": message.id,
        "aps": aps,
    }


def _collapse_id(key: str) -> str:
    if len(key.encode()) <= 64:
        return key
    return hashlib.sha256(key.encode()).hexdigest()
