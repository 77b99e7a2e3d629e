"""Mobile push through Firebase Cloud Messaging HTTP v1, authenticated as a service account.

A send is ``POST {base_url}/v1/projects/{project}/messages:send`` with a Bearer access token.
The token comes from Google's OAuth 2.0 service-account flow: an RS256 JWT signed with the
service account's key (``iss`` its email, ``aud`` the token URI, the firebase.messaging scope) is
exchanged at the token URI (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``); the
access token is cached until a minute before it expires, one refresh at a time.

Choices where FCM leaves room:

- ``UNREGISTERED`` or 404 prunes the token. ``INVALID_ARGUMENT`` fails the message without
  pruning: it may be the payload, and pruning every token because of one bad template would be
  worse than retrying a dead one. ``SENDER_ID_MISMATCH`` (403) is a configuration error.
- 429 and 5xx are transient and honour ``Retry-After``; 401 drops the cached access token (the
  next attempt fetches a fresh one) and, like 403, is a configuration error.
- The payload: ``notification`` (title, body, image); ``data`` holds the content's data plus
  ``deep_link`` and ``omnicx_message_id`` (FCM data values are strings); ``android`` carries TTL,
  priority (``HIGH`` for high urgency, else ``NORMAL``) and the collapse key; ``apns`` the same
  for iOS tokens sent through FCM.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

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

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REFRESH_MARGIN = 60.0  # seconds before expiry a cached access token is replaced


class FcmConfig(BaseModel):
    """Firebase project and service account (``OMNICX_FCM_*``)."""

    model_config = ConfigDict(frozen=True)

    service_account: SecretStr = Field(
        title="Service account",
        description="The service-account key JSON downloaded from the Firebase console.",
    )
    project_id: str | None = Field(
        None, title="Project ID", description="Firebase project; default: the service account's."
    )
    base_url: str = Field(
        "https://fcm.googleapis.com", title="FCM base URL", description="FCM HTTP v1 API."
    )
    token_uri: str | None = Field(
        None,
        title="Token URI",
        description="OAuth token endpoint; default: the service account's token_uri.",
    )

    @model_validator(mode="after")
    def _usable(self) -> FcmConfig:
        account = self.account
        if not (self.project_id or account.get("project_id")):
            raise ValueError("no project_id in the service account; set the project ID")
        if not (self.token_uri or account.get("token_uri")):
            raise ValueError("no token_uri in the service account; set the token URI")
        _ = self.signing_key  # a key that does not load fails here, not at the first send
        return self

    @property
    def account(self) -> dict[str, Any]:
        try:
            account = json.loads(self.service_account.get_secret_value())
        except ValueError:
            raise ValueError("the service account is not JSON") from None
        if not isinstance(account, dict):
            raise ValueError("the service account is not a JSON object")
        missing = [k for k in ("client_email", "private_key") if not account.get(k)]
        if missing:
            raise ValueError(f"the service account lacks {', '.join(missing)}")
        return account

    @property
    def signing_key(self) -> RSAPrivateKey:
        try:
            key = load_pem_private_key(self.account["private_key"].encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the service account's private_key does not load: {exc}") from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the service account's private_key is not an RSA key")
        return key

    @property
    def project(self) -> str:
        return self.project_id or str(self.account["project_id"])

    @property
    def oauth_token_uri(self) -> str:
        return self.token_uri or str(self.account["token_uri"])

    @classmethod
    def from_settings(cls, settings: Settings) -> FcmConfig | None:
        """The configured project, or ``None`` when no service account is set."""
        text: str | None = None
        if settings.fcm_service_account_json is not None:
            text = settings.fcm_service_account_json.get_secret_value()
        elif settings.fcm_service_account_file:
            try:
                text = Path(settings.fcm_service_account_file).read_text()
            except OSError as exc:
                raise ConfigError(f"OMNICX_FCM_SERVICE_ACCOUNT_FILE: {exc}") from exc
        if text is None:
            return None
        try:
            return cls.model_validate(
                {
                    "service_account": text,
                    "project_id": settings.fcm_project_id,
                    "base_url": settings.fcm_base_url,
                    "token_uri": settings.fcm_token_uri,
                }
            )
        except ValidationError as exc:
            raise ConfigError(f"OMNICX_FCM_*: {exc}") from exc


class FcmProvider:
    """Sends :class:`PushContent` to a ``push_token`` address registered with FCM."""

    channel: ClassVar[Channel] = Channel.push
    name: ClassVar[str] = "fcm"

    def __init__(
        self,
        config: FcmConfig,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        account = config.account
        self._email = str(account["client_email"])
        self._key_id = account.get("private_key_id")
        self._key = config.signing_key
        self._url = f"{config.base_url.rstrip('/')}/v1/projects/{config.project}/messages:send"
        self._token: tuple[str, float] | None = None  # (access token, expires at)
        self._lock = asyncio.Lock()

    async def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, PushContent) or message.to.kind != "push_token":
            raise PermanentError("fcm sends push content to a push token")
        token = await self._access_token()
        response = await request(
            self._client,
            "POST",
            self._url,
            service="fcm",
            json={"message": _message(message, content, now=self._clock())},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 200:
            name = json_body(response).get("name")
            return SendResult(provider_message_id=name if isinstance(name, str) else None)
        if response.status_code == 401:
            self._token = None
        raise _error(response)

    async def _access_token(self) -> str:
        async with self._lock:  # one refresh at a time; the others wait and reuse it
            now = self._clock()
            if self._token is not None and self._token[1] - REFRESH_MARGIN > now:
                return self._token[0]
            token_uri = self.config.oauth_token_uri
            claims = {
                "iss": self._email,
                "scope": SCOPE,
                "aud": token_uri,
                "iat": int(now),
                "exp": int(now) + 3600,
            }
            headers = {"kid": self._key_id} if self._key_id else None
            assertion = jwt.encode(claims, self._key, algorithm="RS256", headers=headers)
            response = await request(
                self._client,
                "POST",
                token_uri,
                service="fcm oauth",
                data={"grant_type": GRANT_TYPE, "assertion": assertion},
            )
            body = json_body(response)
            if response.status_code == 200 and isinstance(body.get("access_token"), str):
                expires_in = body.get("expires_in", 3600)
                lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
                self._token = (body["access_token"], now + lifetime)
                return self._token[0]
            text = f"fcm oauth {response.status_code}: {body.get('error_description') or body}"
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(text, retry_after=retry_after(response))
            raise ConfigError(text)


def configured(settings: Settings) -> bool:
    """Whether the settings turn this provider on (cheap: nothing is loaded)."""
    return bool(settings.fcm_service_account_file or settings.fcm_service_account_json)


def build(settings: Settings, http: httpx.AsyncClient) -> FcmProvider:
    """The provider the settings describe; :class:`ConfigError` if they are incomplete."""
    config = FcmConfig.from_settings(settings)
    if config is None:
        raise ConfigError("OMNICX_FCM_SERVICE_ACCOUNT_FILE or _JSON is not set")
    return FcmProvider(config, http)


def _message(message: OutboundMessage, content: PushContent, *, now: float) -> dict[str, Any]:
    notification = {"title": content.title, "body": content.body}
    if content.image_url:
        notification["image"] = content.image_url
    data = {**content.data, "omnicx_message_id": str(message.id)}
    if content.deep_link:
        data["deep_link"] = content.deep_link
    high = content.urgency == "high"
    android: dict[str, Any] = {
        "ttl": f"{max(0, content.ttl_seconds)}s",
        "priority": "HIGH" if high else "NORMAL",
    }
    apns_headers = {
        "apns-priority": "10" if content.urgency in ("high", "normal") else "5",
        "apns-expiration": str(int(now) + content.ttl_seconds if content.ttl_seconds > 0 else 0),
    }
    if content.collapse_key:
        android["collapse_key"] = content.collapse_key
        apns_headers["apns-collapse-id"] = content.collapse_key[:64]
    return {
        "token": message.to.value,
        "notification": notification,
        "data": data,
        "android": android,
        "apns": {"headers": apns_headers},
    }


def _error(response: httpx.Response) -> ProviderError:
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    codes = {
        str(detail["errorCode"])
        for detail in error.get("details") or []
        if isinstance(detail, dict) and detail.get("errorCode")
    }
    status = response.status_code
    label = ",".join(sorted(codes)) or error.get("status") or response.reason_phrase
    text = f"fcm {status} {label}: {error.get('message', '')}".rstrip(": ")
    if "UNREGISTERED" in codes or status == 404:
        return PermanentError(text, prune=True)
    if status == 429 or status >= 500:
        return TransientError(text, retry_after=retry_after(response))
    if status in (401, 403):
        return ConfigError(text)
    return PermanentError(text)
