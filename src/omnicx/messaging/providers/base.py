"""The one narrow interface every channel provider implements, and its errors.

A provider turns one rendered, addressed message into one request to a real service and says how
it went. It never decides *whether* to send (consent, caps and quiet hours are checked before) and
never retries by itself: the delivery loop retries on :class:`TransientError`.

Errors (a provider raises only these; anything else is a bug)::

    ProviderError
    ├── TransientError   try again later, with backoff (timeouts, 429, 5xx); ``retry_after``
    ├── PermanentError   this message will never go (bounce, invalid number, dead subscription);
    │                    ``prune`` says the address itself is dead and should be removed
    └── ConfigError      the provider is misconfigured (bad credentials, missing setting)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    push = "push"  # mobile push: FCM (Android) or APNs (iOS), by the token's platform
    webpush = "webpush"
    inapp = "inapp"
    webhook = "webhook"


@dataclass(frozen=True)
class Address:
    """Where the message goes: an email, an E.164 phone, a push token (``data["platform"]``), a
    web-push subscription (``value`` = endpoint, ``data["keys"]``), a profile id (in-app) or a URL
    (webhook)."""

    kind: Literal["email", "phone", "push_token", "webpush", "profile", "url"]
    value: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailContent:
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # List-Unsubscribe etc.


@dataclass(frozen=True)
class SmsContent:
    text: str


@dataclass(frozen=True)
class PushContent:
    title: str
    body: str
    deep_link: str | None = None
    image_url: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    ttl_seconds: int = 86400
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    collapse_key: str | None = None


@dataclass(frozen=True)
class InAppContent:
    title: str
    body: str
    image_url: str | None = None
    link: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookContent:
    payload: dict[str, Any]


Content = EmailContent | SmsContent | PushContent | InAppContent | WebhookContent


@dataclass(frozen=True)
class OutboundMessage:
    id: int
    idempotency_key: str
    channel: Channel
    profile_id: str
    to: Address
    content: Content
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None
    status: Literal["sent", "delivered"] = "sent"
    detail: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """A send did not happen; the subclass says what to do about it."""


class TransientError(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    def __init__(self, message: str, *, prune: bool = False) -> None:
        super().__init__(message)
        self.prune = prune


class ConfigError(ProviderError):
    pass


class Provider(Protocol):
    """One channel's way out. HTTP providers take an ``httpx.AsyncClient`` so tests can point them
    at a local server; configuration is a pydantic model with titles and descriptions, secrets as
    ``SecretStr``."""

    channel: ClassVar[Channel]
    name: ClassVar[str]

    async def send(self, message: OutboundMessage) -> SendResult: ...
