"""Web push: a local push service checks the VAPID JWT against the key in the Authorization
header and decrypts the aes128gcm body with the subscription's private key, as a browser's push
service and the browser together would; its answers map onto the provider error tree."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import http_ece
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.responses import Response

from omnicx.messaging.providers import webpush
from omnicx.messaging.providers.base import (
    Address,
    Channel,
    ConfigError,
    OutboundMessage,
    PermanentError,
    Provider,
    ProviderError,
    PushContent,
    TransientError,
)
from omnicx.messaging.providers.webpush import VapidConfig, WebPushProvider
from omnicx.settings import Settings
from tests.messaging.providers.factories import outbound
from tests.messaging.providers.servers import Recorder, Seen, serve


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A subscription as a browser makes one: a P-256 key pair and a 16-byte auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls) -> Browser:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    def keys(self) -> dict[str, str]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(point), "auth": b64url(self.auth)}

    def decrypt(self, body: bytes) -> bytes:
        plain: bytes = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return plain


def verify_vapid(seen: Seen, origin: str) -> dict[str, object]:
    """What a push service checks: ES256 JWT signed by the key in ``k``, for this origin, not
    expired and not valid for more than a day. Returns the claims and the key."""
    scheme, _, params = seen.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
    claims: dict[str, object] = jwt.decode(
        fields["t"],
        public,
        algorithms=["ES256"],
        audience=origin,
        options={"require": ["exp", "aud", "sub"]},
    )
    assert isinstance(claims["exp"], int) and claims["exp"] <= time.time() + 24 * 3600
    return {**claims, "k": fields["k"]}


@pytest.fixture
def vapid() -> VapidConfig:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return VapidConfig(private_key=pem, subject="mailto:ops@shop.example", allow_http=True)


@pytest.fixture
async def push_service(
    vapid: VapidConfig,
) -> AsyncIterator[tuple[Recorder, str, WebPushProvider]]:
    recorder = Recorder(
        lambda seen: Response(status_code=201, headers={"Location": f"{seen.path}/msg-1"})
    )
    async with serve(recorder) as base_url, httpx.AsyncClient() as http:
        yield recorder, base_url, WebPushProvider(vapid, http)


def push(endpoint: str, keys: dict[str, str], content: PushContent) -> OutboundMessage:
    return outbound(Channel.webpush, Address("webpush", endpoint, {"keys": keys}), content, id=7)


JACKET = PushContent(
    title="Still thinking about the Alpine jacket?",
    body="10% off today — reserve it for pickup ✓",
    deep_link="https://shop.example/p/alpine",
    image_url="https://shop.example/img/alpine.jpg",
    data={"campaign": "chat-followup"},
    ttl_seconds=3600,
    urgency="high",
    collapse_key="alpine-offer",
)


async def test_push_is_vapid_signed_and_decrypts_to_the_exact_payload(
    push_service: tuple[Recorder, str, WebPushProvider], vapid: VapidConfig
) -> None:
    recorder, base_url, provider = push_service
    browser = Browser.new()

    result = await provider.send(push(f"{base_url}/push/sub-abc", browser.keys(), JACKET))

    [seen] = recorder.seen
    assert (seen.method, seen.path) == ("POST", "/push/sub-abc")
    claims = verify_vapid(seen, origin=base_url)
    assert claims["sub"] == "mailto:ops@shop.example"
    assert claims["k"] == vapid.public_key  # the applicationServerKey the browser subscribed with
    assert seen.headers["ttl"] == "3600"
    assert seen.headers["urgency"] == "high"
    assert seen.headers["topic"] == "alpine-offer"
    assert seen.headers["content-encoding"] == "aes128gcm"
    assert json.loads(browser.decrypt(seen.body)) == {
        "title": "Still thinking about the Alpine jacket?",
        "body": "10% off today — reserve it for pickup ✓",
        "url": "https://shop.example/p/alpine",
        "image": "https://shop.example/img/alpine.jpg",
        "tag": "alpine-offer",
        "data": {"campaign": "chat-followup"},
        "message_id": 7,
    }
    assert result.provider_message_id == "/push/sub-abc/msg-1"


async def test_another_subscription_cannot_decrypt_it(
    push_service: tuple[Recorder, str, WebPushProvider],
) -> None:
    recorder, base_url, provider = push_service
    await provider.send(push(f"{base_url}/push/a", Browser.new().keys(), JACKET))
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises a bare InvalidTag
        Browser.new().decrypt(recorder.seen[0].body)


async def test_vapid_token_is_reused_per_origin_and_renewed_before_expiry(
    vapid: VapidConfig,
) -> None:
    now = [1_800_000_000.0]
    recorder = Recorder(lambda seen: Response(status_code=201))
    async with serve(recorder) as base_url, httpx.AsyncClient() as http:
        provider = WebPushProvider(vapid, http, clock=lambda: now[0])
        keys = Browser.new().keys()
        await provider.send(push(f"{base_url}/push/1", keys, JACKET))
        await provider.send(push(f"{base_url}/push/2", keys, JACKET))
        now[0] += vapid.token_seconds * 0.6
        await provider.send(push(f"{base_url}/push/3", keys, JACKET))
    first, second, third = (s.headers["authorization"] for s in recorder.seen)
    assert first == second
    assert third != first


@pytest.mark.parametrize(
    ("status", "headers", "error", "prune", "retry_after"),
    [
        (410, {}, PermanentError, True, None),
        (404, {}, PermanentError, True, None),
        (413, {}, PermanentError, False, None),
        (400, {}, PermanentError, False, None),
        (429, {"Retry-After": "30"}, TransientError, None, 30.0),
        (502, {}, TransientError, None, None),
        (401, {}, ConfigError, None, None),
        (403, {}, ConfigError, None, None),
    ],
)
async def test_push_service_answers_map_onto_the_error_tree(
    push_service: tuple[Recorder, str, WebPushProvider],
    status: int,
    headers: dict[str, str],
    error: type[ProviderError],
    prune: bool | None,
    retry_after: float | None,
) -> None:
    recorder, base_url, provider = push_service
    recorder.respond = lambda seen: Response("nope", status, headers)
    with pytest.raises(error) as raised:
        await provider.send(push(f"{base_url}/push/x", Browser.new().keys(), JACKET))
    assert type(raised.value) is error
    if isinstance(raised.value, PermanentError):
        assert raised.value.prune is prune
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after


@pytest.mark.parametrize(
    ("endpoint", "keys"),
    [
        ("{base}/push/x", {}),
        ("{base}/push/x", {"p256dh": "bm90IGEga2V5", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}),
        ("{base}/push/x", {"p256dh": "<browser>", "auth": "c2hvcnQ"}),
        ("ftp://push.example/x", {"p256dh": "<browser>", "auth": "<browser>"}),
    ],
)
async def test_an_unusable_subscription_is_pruned_without_a_request(
    push_service: tuple[Recorder, str, WebPushProvider], endpoint: str, keys: dict[str, str]
) -> None:
    recorder, base_url, provider = push_service
    good = Browser.new().keys()
    keys = {k: good[k] if v == "<browser>" else v for k, v in keys.items()}
    with pytest.raises(PermanentError) as raised:
        await provider.send(push(endpoint.format(base=base_url), keys, JACKET))
    assert raised.value.prune
    assert recorder.seen == []


async def test_a_payload_too_big_for_one_record_fails_without_pruning(
    push_service: tuple[Recorder, str, WebPushProvider],
) -> None:
    recorder, base_url, provider = push_service
    big = PushContent(title="Sale", body="x" * 4000)
    with pytest.raises(PermanentError) as raised:
        await provider.send(push(f"{base_url}/push/x", Browser.new().keys(), big))
    assert not raised.value.prune
    assert recorder.seen == []


async def test_plain_http_endpoints_are_refused_unless_allowed(vapid: VapidConfig) -> None:
    strict = vapid.model_copy(update={"allow_http": False})
    async with httpx.AsyncClient() as http:
        with pytest.raises(PermanentError):
            await WebPushProvider(strict, http).send(
                push("http://127.0.0.1:9/push/x", Browser.new().keys(), JACKET)
            )


def test_config_reads_omnicx_vapid_settings_and_refuses_bad_keys() -> None:
    raw = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    web_push_style = b64url(raw.to_bytes(32, "big"))  # what `web-push generate-vapid-keys` prints
    config = VapidConfig.from_settings(
        Settings(vapid_private_key=web_push_style, vapid_subject="https://shop.example")
    )
    assert config is not None and len(unb64url(config.public_key)) == 65
    assert VapidConfig.from_settings(Settings(vapid_private_key=None)) is None
    with pytest.raises(ConfigError, match="VAPID"):
        VapidConfig.from_settings(Settings(vapid_private_key="not-a-key"))
    with pytest.raises(ConfigError, match="subject"):
        VapidConfig.from_settings(
            Settings(vapid_private_key=web_push_style, vapid_subject="ops@shop.example")
        )


async def test_build_makes_the_provider_only_when_configured(vapid: VapidConfig) -> None:
    settings = Settings(vapid_private_key=vapid.private_key, vapid_subject="mailto:a@b.example")
    unset = Settings(vapid_private_key=None)
    assert webpush.configured(settings) and not webpush.configured(unset)
    async with httpx.AsyncClient() as http:
        provider: Provider = webpush.build(settings, http)  # mypy checks the protocol
        assert isinstance(provider, WebPushProvider)
        with pytest.raises(ConfigError):
            webpush.build(unset, http)
