"""APNs: a local HTTP/2-over-TLS server shaped like APNs verifies the ES256 provider token with
the team key's public half and checks the apns-* headers; token refresh and error mapping."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr
from starlette.responses import JSONResponse, Response

from omnicx.messaging.providers import apns as apns_module
from omnicx.messaging.providers.apns import ApnsConfig, ApnsProvider, http2_client
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
from omnicx.settings import Settings
from tests.messaging.providers.factories import outbound
from tests.messaging.providers.servers import Recorder, Seen, self_signed, serve

TEAM, KEY_ID, TOPIC = "ABCDE12345", "KEY0000001", "com.shop.app"
DEVICE = "a3f1" * 16


def p8(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class Apple:
    """APNs as far as a provider can tell: HTTP/2 only, provider tokens checked."""

    key: ec.EllipticCurvePrivateKey
    now: list[float]
    tokens: list[str] = field(default_factory=list)
    answer: Response | None = None

    def __call__(self, seen: Seen) -> Response:
        assert seen.http_version == "2", "APNs speaks HTTP/2 only"
        assert seen.method == "POST" and seen.path.startswith("/3/device/")
        scheme, _, token = seen.headers["authorization"].partition(" ")
        assert scheme == "bearer"
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
        claims = jwt.decode(
            token,
            self.key.public_key(),
            algorithms=["ES256"],
            options={"require": ["iss", "iat"], "verify_iat": False},  # checked on our clock
        )
        assert claims["iss"] == TEAM
        if self.now[0] - claims["iat"] > 3600:
            return JSONResponse({"reason": "ExpiredProviderToken"}, 403)
        self.tokens.append(token)
        return self.answer or Response(headers={"apns-id": seen.headers["apns-id"]})


@pytest.fixture
async def apns(tmp_path: Path) -> AsyncIterator[tuple[Apple, Recorder, ApnsProvider, list[float]]]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = [1_800_000_000.0]
    apple = Apple(key, now)
    recorder = Recorder(apple)
    cert = self_signed(tmp_path)
    async with (
        serve(recorder, tls=cert) as base_url,
        http2_client(verify=cert.client_context()) as http,
    ):
        config = ApnsConfig(
            team_id=TEAM, key_id=KEY_ID, private_key=p8(key), topic=TOPIC, base_url=base_url
        )
        yield apple, recorder, ApnsProvider(config, http, clock=lambda: now[0]), now


def push(content: PushContent, device: str = DEVICE) -> OutboundMessage:
    return outbound(
        Channel.push, Address("push_token", device, {"platform": "ios"}), content, id=11
    )


JACKET = PushContent(
    title="Still thinking about the Alpine jacket?",
    body="10% off today",
    deep_link="shop://p/alpine",
    image_url="https://shop.example/img/alpine.jpg",
    data={"campaign": "chat-followup"},
    ttl_seconds=3600,
    urgency="high",
    collapse_key="alpine-offer",
)


async def test_alert_goes_over_http2_with_a_verified_token_and_apns_headers(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]],
) -> None:
    apple, recorder, provider, now = apns
    message = push(JACKET)
    result = await provider.send(message)

    [seen] = recorder.seen
    assert seen.path == f"/3/device/{DEVICE}"
    assert len(apple.tokens) == 1
    apns_id = str(uuid.UUID(seen.headers["apns-id"]))
    assert {k: v for k, v in seen.headers.items() if k.startswith("apns-")} == {
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": str(int(now[0]) + 3600),
        "apns-collapse-id": "alpine-offer",
        "apns-id": apns_id,
    }
    assert json.loads(seen.body) == {
        "aps": {
            "alert": {"title": "Still thinking about the Alpine jacket?", "body": "10% off today"},
            "sound": "default",
            "mutable-content": 1,
        },
        "campaign": "chat-followup",
        "deep_link": "shop://p/alpine",
        "image_url": "https://shop.example/img/alpine.jpg",
        "omnicx_message_id": 11,
    }
    assert result.provider_message_id == apns_id
    await provider.send(message)
    assert recorder.seen[1].headers["apns-id"] == apns_id  # a retry carries the same id


async def test_silent_low_urgency_push_is_background_priority_5(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]],
) -> None:
    _, recorder, provider, _ = apns
    await provider.send(push(PushContent(title="", body="", urgency="low", ttl_seconds=0)))
    seen = recorder.seen[0]
    assert (seen.headers["apns-push-type"], seen.headers["apns-priority"]) == ("background", "5")
    assert seen.headers["apns-expiration"] == "0"
    assert json.loads(seen.body)["aps"] == {"content-available": 1}


async def test_provider_token_is_reused_then_refreshed_within_50_minutes(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]],
) -> None:
    apple, _, provider, now = apns
    await provider.send(push(JACKET))
    now[0] += 49 * 60
    await provider.send(push(JACKET))
    assert apple.tokens[0] == apple.tokens[1]
    now[0] += 2 * 60
    await provider.send(push(JACKET))
    assert apple.tokens[2] != apple.tokens[0]
    assert jwt.decode(apple.tokens[2], options={"verify_signature": False})["iat"] == int(now[0])


def apns_error(status: int, reason: str, **headers: str) -> Response:
    return JSONResponse({"reason": reason}, status, headers)


@pytest.mark.parametrize(
    ("answer", "error", "prune", "retry_after"),
    [
        (apns_error(410, "Unregistered"), PermanentError, True, None),
        (apns_error(400, "BadDeviceToken"), PermanentError, True, None),
        (apns_error(400, "DeviceTokenNotForTopic"), PermanentError, False, None),
        (apns_error(413, "PayloadTooLarge"), PermanentError, False, None),
        (apns_error(403, "InvalidProviderToken"), ConfigError, None, None),
        (apns_error(400, "BadTopic"), ConfigError, None, None),
        (apns_error(429, "TooManyRequests", **{"Retry-After": "5"}), TransientError, None, 5.0),
        (apns_error(503, "ServiceUnavailable"), TransientError, None, None),
        (apns_error(500, "InternalServerError"), TransientError, None, None),
    ],
)
async def test_apns_errors_map_onto_the_error_tree(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]],
    answer: Response,
    error: type[ProviderError],
    prune: bool | None,
    retry_after: float | None,
) -> None:
    apple, _, provider, _ = apns
    apple.answer = answer
    with pytest.raises(error) as raised:
        await provider.send(push(JACKET))
    assert type(raised.value) is error
    if isinstance(raised.value, PermanentError):
        assert raised.value.prune is prune
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after


async def test_an_expired_provider_token_is_transient_and_the_retry_signs_a_new_one(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]],
) -> None:
    apple, recorder, provider, now = apns
    await provider.send(push(JACKET))
    # The server's clock ran ahead of ours: the token we still consider fresh is expired there.
    now_for_server = now[0] + 3700
    apple.now = [now_for_server]
    with pytest.raises(TransientError):
        await provider.send(push(JACKET))
    now[0] = now_for_server
    await provider.send(push(JACKET))
    assert len(apple.tokens) == 2 and apple.tokens[1] != apple.tokens[0]
    assert len(recorder.seen) == 3


@pytest.mark.parametrize("device", ["not-hex-at-all", "../../3/device/abc", "ab"])
async def test_a_malformed_device_token_is_pruned_without_a_request(
    apns: tuple[Apple, Recorder, ApnsProvider, list[float]], device: str
) -> None:
    _, recorder, provider, _ = apns
    with pytest.raises(PermanentError) as raised:
        await provider.send(push(JACKET, device=device))
    assert raised.value.prune
    assert recorder.seen == []


def test_config_reads_omnicx_apns_settings(tmp_path: Path) -> None:
    key_file = tmp_path / "AuthKey_KEY0000001.p8"
    key_file.write_text(p8(ec.generate_private_key(ec.SECP256R1())))
    settings = Settings(
        apns_team_id=TEAM, apns_key_id=KEY_ID, apns_private_key_file=str(key_file), apns_topic=TOPIC
    )
    config = ApnsConfig.from_settings(settings)
    assert config is not None and config.base_url == "https://api.push.apple.com"
    assert ApnsConfig.from_settings(Settings(apns_team_id=None)) is None
    with pytest.raises(ConfigError, match="topic"):
        ApnsConfig.from_settings(settings.model_copy(update={"apns_topic": None}))
    rsa_like = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError, match="APNs key"):
        ApnsConfig.from_settings(
            settings.model_copy(
                update={"apns_private_key_file": None, "apns_private_key": SecretStr(rsa_like)}
            )
        )


async def test_build_makes_the_provider_only_when_configured() -> None:
    settings = Settings(
        apns_team_id=TEAM,
        apns_key_id=KEY_ID,
        apns_private_key=p8(ec.generate_private_key(ec.SECP256R1())),
        apns_topic=TOPIC,
    )
    unset = Settings(apns_team_id=None)
    assert apns_module.configured(settings) and not apns_module.configured(unset)
    async with http2_client() as http:
        provider: Provider = apns_module.build(settings, http)  # mypy checks the protocol
        assert isinstance(provider, ApnsProvider)
        with pytest.raises(ConfigError):
            apns_module.build(unset, http)
