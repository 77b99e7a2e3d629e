"""FCM HTTP v1: a local server plays both Google's OAuth token endpoint (it verifies the RS256
service-account assertion with the account's public key) and FCM (it accepts only the access
token it issued); token caching, payload shape and error mapping follow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import JSONResponse, Response

from omnicx.messaging.providers import fcm as fcm_module
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
from omnicx.messaging.providers.fcm import SCOPE, FcmConfig, FcmProvider
from omnicx.settings import Settings
from tests.messaging.providers.factories import outbound
from tests.messaging.providers.servers import Recorder, Seen, serve

PROJECT, EMAIL = "omnicx-shop", "push@omnicx-shop.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(key: rsa.RSAPrivateKey, token_uri: str) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": EMAIL,
            "token_uri": token_uri,
        }
    )


@dataclass
class Google:
    """The token endpoint and FCM, as one local service."""

    key: rsa.RSAPrivateKey
    now: list[float]
    base_url: str = ""
    issued: list[str] = field(default_factory=list)
    fcm_answer: Response | None = None
    token_answer: Response | None = None

    def __call__(self, seen: Seen) -> Response:
        if seen.path == "/token":
            return self.token(seen)
        assert seen.path == f"/v1/projects/{PROJECT}/messages:send"
        if seen.headers.get("authorization") != f"Bearer {self.issued[-1]}":
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        return self.fcm_answer or JSONResponse({"name": f"projects/{PROJECT}/messages/0:1"})

    def token(self, seen: Seen) -> Response:
        if self.token_answer is not None:
            return self.token_answer
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert jwt.get_unverified_header(form["assertion"])["kid"] == "key-1"
        claims = jwt.decode(
            form["assertion"],
            self.key.public_key(),
            algorithms=["RS256"],
            audience=f"{self.base_url}/token",
            # iat/exp are checked below against the test's clock, which the provider also reads
            options={
                "require": ["iss", "aud", "iat", "exp", "scope"],
                "verify_iat": False,
                "verify_exp": False,
            },
        )
        assert (claims["iss"], claims["scope"]) == (EMAIL, SCOPE)
        assert claims["iat"] <= self.now[0] < claims["exp"] <= claims["iat"] + 3600
        self.issued.append(f"ya29.access-{len(self.issued) + 1}")
        return JSONResponse({"access_token": self.issued[-1], "expires_in": 3599})


@pytest.fixture
async def fcm(
    rsa_key: rsa.RSAPrivateKey,
) -> AsyncIterator[tuple[Google, Recorder, FcmProvider, list[float]]]:
    now = [1_800_000_000.0]
    google = Google(rsa_key, now)
    recorder = Recorder(google)
    async with serve(recorder) as base_url, httpx.AsyncClient() as http:
        google.base_url = base_url
        config = FcmConfig(
            service_account=service_account(rsa_key, f"{base_url}/token"), base_url=base_url
        )
        yield google, recorder, FcmProvider(config, http, clock=lambda: now[0]), now


def push(content: PushContent, token: str = "fcm-token-abc") -> OutboundMessage:
    return outbound(
        Channel.push, Address("push_token", token, {"platform": "android"}), content, id=9
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


async def test_send_uses_the_access_token_from_a_verified_service_account_assertion(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
) -> None:
    google, recorder, provider, now = fcm
    result = await provider.send(push(JACKET))

    assert result.provider_message_id == f"projects/{PROJECT}/messages/0:1"
    token_request, send = recorder.seen
    assert token_request.path == "/token" and google.issued == ["ya29.access-1"]
    assert send.headers["authorization"] == "Bearer ya29.access-1"
    assert send.headers["content-type"] == "application/json"
    assert json.loads(send.body) == {
        "message": {
            "token": "fcm-token-abc",
            "notification": {
                "title": "Still thinking about the Alpine jacket?",
                "body": "10% off today",
                "image": "https://shop.example/img/alpine.jpg",
            },
            "data": {
                "campaign": "chat-followup",
                "deep_link": "shop://p/alpine",
                "omnicx_message_id": "9",
            },
            "android": {"ttl": "3600s", "priority": "HIGH", "collapse_key": "alpine-offer"},
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": str(int(now[0]) + 3600),
                    "apns-collapse-id": "alpine-offer",
                }
            },
        }
    }


async def test_the_access_token_is_cached_until_it_nearly_expires(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
) -> None:
    google, recorder, provider, now = fcm
    await provider.send(push(JACKET))
    now[0] += 3000
    await provider.send(push(JACKET))
    assert google.issued == ["ya29.access-1"]
    now[0] += 560  # within a minute of the 3599 s lifetime
    await provider.send(push(JACKET))
    assert google.issued == ["ya29.access-1", "ya29.access-2"]
    assert recorder.seen[-1].headers["authorization"] == "Bearer ya29.access-2"


def fcm_error(status: int, state: str, code: str | None = None) -> Response:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    error = {"code": status, "message": "nope", "status": state, "details": details if code else []}
    return JSONResponse({"error": error}, status)


@pytest.mark.parametrize(
    ("answer", "error", "prune", "retry_after"),
    [
        (fcm_error(404, "NOT_FOUND", "UNREGISTERED"), PermanentError, True, None),
        (fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), PermanentError, False, None),
        (fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), ConfigError, None, None),
        (fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), ConfigError, None, None),
        (fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), TransientError, None, None),
        (fcm_error(500, "INTERNAL", "INTERNAL"), TransientError, None, None),
    ],
)
async def test_fcm_errors_map_onto_the_error_tree(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
    answer: Response,
    error: type[ProviderError],
    prune: bool | None,
    retry_after: float | None,
) -> None:
    google, _, provider, _ = fcm
    google.fcm_answer = answer
    with pytest.raises(error) as raised:
        await provider.send(push(JACKET))
    assert type(raised.value) is error
    if isinstance(raised.value, PermanentError):
        assert raised.value.prune is prune


async def test_quota_exceeded_is_transient_and_honours_retry_after(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
) -> None:
    google, _, provider, _ = fcm
    answer = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
    answer.headers["Retry-After"] = "42"
    google.fcm_answer = answer
    with pytest.raises(TransientError) as raised:
        await provider.send(push(JACKET))
    assert raised.value.retry_after == 42.0


async def test_a_refused_access_token_is_dropped_and_the_next_send_fetches_another(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
) -> None:
    google, _, provider, _ = fcm
    await provider.send(push(JACKET))
    google.issued.append("revoked-on-the-server")  # FCM now accepts only a newer token
    with pytest.raises(ConfigError):
        await provider.send(push(JACKET))
    await provider.send(push(JACKET))
    assert google.issued[-1] == "ya29.access-3"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT"}, 400),
            ConfigError,
        ),
        (JSONResponse({"error": "unauthorized_client"}, 401), ConfigError),
        (Response("busy", 503), TransientError),
    ],
)
async def test_token_endpoint_failures_map_onto_the_error_tree(
    fcm: tuple[Google, Recorder, FcmProvider, list[float]],
    answer: Response,
    error: type[ProviderError],
) -> None:
    google, recorder, provider, _ = fcm
    google.token_answer = answer
    with pytest.raises(error):
        await provider.send(push(JACKET))
    assert [s.path for s in recorder.seen] == ["/token"]  # nothing was sent to FCM


def test_config_reads_omnicx_fcm_settings(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "service-account.json"
    path.write_text(service_account(rsa_key, "https://oauth2.googleapis.com/token"))
    config = FcmConfig.from_settings(Settings(fcm_service_account_file=str(path)))
    assert config is not None
    assert (config.project, config.oauth_token_uri) == (
        PROJECT,
        "https://oauth2.googleapis.com/token",
    )
    override = FcmConfig.from_settings(
        Settings(
            fcm_service_account_json=path.read_text(),
            fcm_project_id="other",
            fcm_token_uri="http://t",
        )
    )
    assert override is not None and (override.project, override.oauth_token_uri) == (
        "other",
        "http://t",
    )
    assert FcmConfig.from_settings(Settings(fcm_service_account_file=None)) is None
    with pytest.raises(ConfigError, match="SERVICE_ACCOUNT_FILE"):
        FcmConfig.from_settings(Settings(fcm_service_account_file=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigError, match="private_key"):
        FcmConfig.from_settings(Settings(fcm_service_account_json='{"client_email": "a@b"}'))


async def test_build_makes_the_provider_only_when_configured(rsa_key: rsa.RSAPrivateKey) -> None:
    settings = Settings(fcm_service_account_json=service_account(rsa_key, "https://t.example"))
    unset = Settings(fcm_service_account_json=None, fcm_service_account_file=None)
    assert fcm_module.configured(settings) and not fcm_module.configured(unset)
    async with httpx.AsyncClient() as http:
        provider: Provider = fcm_module.build(settings, http)  # mypy checks the protocol
        assert isinstance(provider, FcmProvider)
        with pytest.raises(ConfigError):
            fcm_module.build(unset, http)
