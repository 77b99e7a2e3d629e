"""Which providers this installation has, built from settings.

Each provider module contributes one :class:`ProviderSpec`: its name, channel, whether the
settings configure it (cheap: the API process asks this to choose channels without building
clients), and how to build it from a :class:`ProviderContext`. :data:`SPECS` lists them; adding a
provider is adding its spec there. A provider that is not configured is simply absent: its
channel is not offered, and an explicit request for it is ``skipped`` (``no provider``).

For push, the token's platform picks the provider: ``apns`` for iOS tokens when configured,
otherwise ``fcm``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from omnicx.messaging.providers import apns, fcm, twilio, webpush
from omnicx.messaging.providers.base import Channel, Provider
from omnicx.messaging.providers.inapp import HUB, InAppProvider, InboxHub
from omnicx.messaging.providers.smtp import SmtpProvider
from omnicx.messaging.providers.webhook import WebhookProvider
from omnicx.messaging.signing import webhook_key
from omnicx.settings import Settings


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may be built with: settings, one shared HTTP client, the in-app hub."""

    settings: Settings
    http: httpx.AsyncClient
    hub: InboxHub = HUB


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    channel: Channel
    configured: Callable[[Settings], bool]
    build: Callable[[ProviderContext], Provider]


def _smtp(ctx: ProviderContext) -> Provider:
    s = ctx.settings
    return SmtpProvider(
        host=s.smtp_host or "",
        port=s.smtp_port,
        tls=s.smtp_tls,
        username=s.smtp_username,
        password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        verify_tls=s.smtp_verify_tls,
        timeout=s.smtp_timeout,
        pool_size=s.smtp_pool_size,
    )


def _webhook(ctx: ProviderContext) -> Provider:
    return WebhookProvider(
        key=webhook_key(ctx.settings),
        allowed_networks=ctx.settings.webhook_allowed_networks,
        timeout=ctx.settings.webhook_timeout,
    )


SPECS: tuple[ProviderSpec, ...] = (
    ProviderSpec("smtp", Channel.email, lambda s: bool(s.smtp_host), _smtp),
    ProviderSpec("webhook", Channel.webhook, lambda s: True, _webhook),
    ProviderSpec("inapp", Channel.inapp, lambda s: True, lambda ctx: InAppProvider(ctx.hub)),
    ProviderSpec(
        "twilio", Channel.sms, twilio.configured, lambda c: twilio.build(c.settings, c.http)
    ),
    ProviderSpec(
        "webpush", Channel.webpush, webpush.configured, lambda c: webpush.build(c.settings, c.http)
    ),
    ProviderSpec("fcm", Channel.push, fcm.configured, lambda c: fcm.build(c.settings, c.http)),
    ProviderSpec("apns", Channel.push, apns.configured, lambda c: apns.build(c.settings, c.http)),
)


def configured(settings: Settings, specs: Sequence[ProviderSpec] = SPECS) -> dict[str, Channel]:
    """Provider name -> channel, for every provider the settings configure."""
    return {spec.name: spec.channel for spec in specs if spec.configured(settings)}


def build_providers(
    ctx: ProviderContext, specs: Sequence[ProviderSpec] = SPECS
) -> dict[str, Provider]:
    return {spec.name: spec.build(ctx) for spec in specs if spec.configured(ctx.settings)}


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client providers share: HTTP/2 where the server offers it (APNs requires it),
    bounded timeouts, no redirects."""
    return httpx.AsyncClient(
        http2=True,
        timeout=httpx.Timeout(settings.webhook_timeout),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
    )


PUSH_BY_PLATFORM = {"ios": "apns", "android": "fcm"}


def provider_for(
    channel: str, platform: str | None, available: Mapping[str, Channel]
) -> str | None:
    """The provider that sends ``channel`` (for push, to a token of ``platform``)."""
    names = [name for name, ch in available.items() if ch.value == channel]
    if not names:
        return None
    if channel == Channel.push.value:
        preferred = PUSH_BY_PLATFORM.get((platform or "").lower(), "fcm")
        if preferred in names:
            return preferred
        if "fcm" in names:
            return "fcm"
    return names[0]
