"""SMS through Twilio's REST API, or anything shaped like it (the base URL is a setting).

One send is ``POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json``, form-encoded ``To``,
``From`` (or ``MessagingServiceSid``), ``Body`` and ``StatusCallback``, HTTP Basic with the account
SID and auth token. Twilio then posts the message's progress to the status callback; the router
that receives it calls :func:`verify_signature` and :func:`parse_status_callback` (both pure).

Choices where Twilio leaves room:

- Errors: 429 and 5xx are transient (honouring ``Retry-After``); 401, 404 (no such account) and
  the sender-side codes in :data:`CONFIG_CODES` are configuration errors; the recipient codes in
  :data:`PRUNE_CODES` (invalid, non-mobile or unroutable number) are permanent and prune the
  number; any other 4xx is permanent for this message only (21610, the recipient replied STOP,
  included: that is consent, which the policies own, not a dead number).
- With both a messaging service and a number configured, the messaging service picks the sender.
- Status callbacks: only ``sent``, ``delivered`` (``read`` counts), ``undelivered`` and ``failed``
  (``canceled`` counts) are reported; in-flight statuses (queued, sending…) give ``None``. Carrier
  codes 30005 (unknown number) and 30006 (landline/unreachable carrier) set ``prune``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from omnicx.messaging.providers._http import json_body, request, retry_after
from omnicx.messaging.providers.base import (
    Channel,
    ConfigError,
    OutboundMessage,
    PermanentError,
    ProviderError,
    SendResult,
    SmsContent,
    TransientError,
)
from omnicx.settings import Settings

PRUNE_CODES = frozenset({21211, 21217, 21401, 21407, 21421, 21612, 21614})
CONFIG_CODES = frozenset({20003, 20404, 21212, 21603, 21606, 21659})
DELIVERY_PRUNE_CODES = frozenset({"30005", "30006"})


class TwilioConfig(BaseModel):
    """Twilio account and sender (``OMNICX_TWILIO_*``)."""

    model_config = ConfigDict(frozen=True)

    account_sid: str = Field(
        min_length=1, title="Account SID", description="The account's SID (AC…)."
    )
    auth_token: SecretStr = Field(
        title="Auth token", description="Authenticates sends and signs status callbacks."
    )
    from_number: str | None = Field(
        None, title="From number", description="E.164 number messages are sent from."
    )
    messaging_service_sid: str | None = Field(
        None,
        title="Messaging service SID",
        description="MG… service that picks the sender; used instead of the From number.",
    )
    base_url: str = Field(
        "https://api.twilio.com",
        title="API base URL",
        description="Twilio's REST API, or a compatible service.",
    )
    status_callback_url: str | None = Field(
        None,
        title="Status callback URL",
        description="Public URL Twilio posts delivery statuses to.",
    )

    @model_validator(mode="after")
    def _has_sender(self) -> TwilioConfig:
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("set a from number or a messaging service SID")
        return self

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioConfig | None:
        """The configured account, or ``None`` when ``OMNICX_TWILIO_ACCOUNT_SID`` is unset."""
        if not settings.twilio_account_sid:
            return None
        try:
            return cls.model_validate(
                {
                    "account_sid": settings.twilio_account_sid,
                    "auth_token": settings.twilio_auth_token,
                    "from_number": settings.twilio_from_number,
                    "messaging_service_sid": settings.twilio_messaging_service_sid,
                    "base_url": settings.twilio_base_url,
                    "status_callback_url": settings.twilio_status_callback_url,
                }
            )
        except ValidationError as exc:
            raise ConfigError(f"OMNICX_TWILIO_*: {exc}") from exc


class TwilioProvider:
    """Sends :class:`SmsContent` to a ``phone`` address."""

    channel: ClassVar[Channel] = Channel.sms
    name: ClassVar[str] = "twilio"

    def __init__(self, config: TwilioConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        base = config.base_url.rstrip("/")
        self._url = f"{base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"

    async def send(self, message: OutboundMessage) -> SendResult:
        content = message.content
        if not isinstance(content, SmsContent) or message.to.kind != "phone":
            raise PermanentError("twilio sends SMS content to a phone number")
        form = {"To": message.to.value, "Body": content.text}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.from_number:
            form["From"] = self.config.from_number
        if self.config.status_callback_url:
            form["StatusCallback"] = self.config.status_callback_url
        auth = (self.config.account_sid, self.config.auth_token.get_secret_value())
        response = await request(
            self._client, "POST", self._url, service="twilio", data=form, auth=auth
        )
        if response.status_code in (200, 201):
            body = json_body(response)
            sid = body.get("sid")
            return SendResult(
                provider_message_id=sid if isinstance(sid, str) else None,
                detail={"status": body.get("status")},
            )
        raise _error(response)


def configured(settings: Settings) -> bool:
    """Whether the settings turn this provider on (cheap: nothing is loaded)."""
    return bool(settings.twilio_account_sid)


def build(settings: Settings, http: httpx.AsyncClient) -> TwilioProvider:
    """The provider the settings describe; :class:`ConfigError` if they are incomplete."""
    config = TwilioConfig.from_settings(settings)
    if config is None:
        raise ConfigError("OMNICX_TWILIO_ACCOUNT_SID is not set")
    return TwilioProvider(config, http)


def _error(response: httpx.Response) -> ProviderError:
    body = json_body(response)
    code = body.get("code")
    status = response.status_code
    text = f"twilio {status} (code {code}): {body.get('message') or response.reason_phrase}"
    if status == 429 or status >= 500:
        return TransientError(text, retry_after=retry_after(response))
    if status in (401, 404) or code in CONFIG_CODES:
        return ConfigError(text)
    return PermanentError(text, prune=code in PRUNE_CODES)


# --- status callbacks ------------------------------------------------------------------------


def signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]
) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by every form
    parameter, sorted by name (repeated names: their distinct values sorted), name then value."""
    pairs = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, set[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, set()).add(value)
    data = url + "".join(k + v for k in sorted(grouped) for v in sorted(grouped[k]))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def verify_signature(
    *,
    auth_token: str,
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature_header: str,
) -> bool:
    """Whether ``signature_header`` signs this request. ``url`` is the full URL Twilio called
    (with query string); like Twilio's own libraries we also accept it with the port removed or
    the default port added, since proxies differ in what they pass on."""
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    given = signature_header.strip().encode()
    return any(
        hmac.compare_digest(signature(auth_token, candidate, pairs).encode(), given)
        for candidate in _url_variants(url)
    )


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.username is not None:
        host = f"{parts.netloc.rsplit('@', 1)[0]}@{host}"
    default = 443 if parts.scheme == "https" else 80
    port = parts.port
    without = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port or default}"))
    return list(dict.fromkeys([url, without, with_port]))


@dataclass(frozen=True)
class TwilioStatus:
    """What a status callback says about one message."""

    provider_message_id: str
    status: Literal["sent", "delivered", "failed", "undelivered"]
    error_code: str | None
    prune: bool = False


_FINAL: dict[str, Literal["sent", "delivered", "failed", "undelivered"]] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
_IN_FLIGHT = frozenset({"accepted", "scheduled", "queued", "sending", "receiving", "received"})


def parse_status_callback(form: Mapping[str, str]) -> TwilioStatus | None:
    """The status a callback reports, ``None`` for in-flight ones; ``ValueError`` if the form is
    not a status callback."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    raw = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not raw:
        raise ValueError("not a Twilio status callback: MessageSid and MessageStatus are required")
    status = raw.strip().lower()
    if status in _IN_FLIGHT:
        return None
    if status not in _FINAL:
        raise ValueError(f"unknown Twilio message status {raw!r}")
    error_code = form.get("ErrorCode") or None
    return TwilioStatus(
        provider_message_id=sid,
        status=_FINAL[status],
        error_code=error_code,
        prune=error_code in DELIVERY_PRUNE_CODES,
    )
