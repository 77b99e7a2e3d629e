"""Twilio: a local server shaped like Twilio's Messages API receives authenticated form posts;
its errors map onto the provider error tree; status callbacks verify and parse."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.responses import Response

from omnicx.messaging.providers import twilio as twilio_module
from omnicx.messaging.providers.base import (
    Address,
    Channel,
    ConfigError,
    OutboundMessage,
    PermanentError,
    Provider,
    ProviderError,
    SmsContent,
    TransientError,
)
from omnicx.messaging.providers.twilio import (
    TwilioConfig,
    TwilioProvider,
    TwilioStatus,
    parse_status_callback,
    verify_signature,
)
from omnicx.settings import Settings
from tests.messaging.providers.factories import outbound
from tests.messaging.providers.servers import Recorder, serve

SID, TOKEN = "AC0123456789abcdef", "twilio-token"


def twilio_json(status: int, body: dict[str, object], **headers: str) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[Recorder, TwilioProvider]]:
    recorder = Recorder(lambda seen: twilio_json(201, {"sid": "SM42", "status": "queued"}))
    async with serve(recorder) as base_url, httpx.AsyncClient() as http:
        config = TwilioConfig(
            account_sid=SID,
            auth_token=TOKEN,
            from_number="+15005550006",
            base_url=base_url,
            status_callback_url="https://cx.example.com/v1/callbacks/twilio",
        )
        yield recorder, TwilioProvider(config, http)


def sms(text: str, to: str = "+14155550100") -> OutboundMessage:
    return outbound(Channel.sms, Address("phone", to), SmsContent(text))


async def test_sms_is_an_authenticated_form_post_to_the_messages_resource(
    twilio: tuple[Recorder, TwilioProvider],
) -> None:
    recorder, provider = twilio
    text = "Still thinking about the Alpine jacket? 10% off & free pickup = today ✓"
    result = await provider.send(sms(text))

    assert result.provider_message_id == "SM42"
    [seen] = recorder.seen
    assert (seen.method, seen.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert (
        seen.headers["authorization"]
        == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    )
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(seen.body.decode(), strict_parsing=True) == {
        "To": ["+14155550100"],
        "From": ["+15005550006"],
        "Body": [text],
        "StatusCallback": ["https://cx.example.com/v1/callbacks/twilio"],
    }


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "prune", "retry_after"),
    [
        (
            400,
            {"code": 21211, "message": "Invalid 'To' Phone Number"},
            {},
            PermanentError,
            True,
            None,
        ),
        (400, {"code": 21614, "message": "not a mobile number"}, {}, PermanentError, True, None),
        (
            400,
            {"code": 21610, "message": "unsubscribed recipient"},
            {},
            PermanentError,
            False,
            None,
        ),
        (400, {"code": 21606, "message": "From is not SMS-capable"}, {}, ConfigError, None, None),
        (401, {"code": 20003, "message": "Authenticate"}, {}, ConfigError, None, None),
        (
            429,
            {"code": 20429, "message": "Too Many Requests"},
            {"Retry-After": "7"},
            TransientError,
            None,
            7.0,
        ),
        (503, {"message": "Service Unavailable"}, {}, TransientError, None, None),
    ],
)
async def test_twilio_errors_map_onto_the_error_tree(
    twilio: tuple[Recorder, TwilioProvider],
    status: int,
    body: dict[str, object],
    headers: dict[str, str],
    error: type[ProviderError],
    prune: bool | None,
    retry_after: float | None,
) -> None:
    recorder, provider = twilio
    recorder.respond = lambda seen: twilio_json(status, {"status": status, **body}, **headers)
    with pytest.raises(error) as raised:
        await provider.send(sms("hi"))
    assert type(raised.value) is error
    if isinstance(raised.value, PermanentError):
        assert raised.value.prune is prune
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after


async def test_an_unreachable_api_is_transient() -> None:
    async with serve(Recorder(lambda seen: Response())) as base_url:
        pass  # the port is free again: nothing listens there now
    async with httpx.AsyncClient() as http:
        config = TwilioConfig(
            account_sid=SID, auth_token=TOKEN, from_number="+1500", base_url=base_url
        )
        with pytest.raises(TransientError):
            await TwilioProvider(config, http).send(sms("hi"))


async def test_a_messaging_service_picks_the_sender(
    twilio: tuple[Recorder, TwilioProvider],
) -> None:
    recorder, provider = twilio
    config = provider.config.model_copy(
        update={"from_number": None, "messaging_service_sid": "MG99", "status_callback_url": None}
    )
    async with httpx.AsyncClient() as http:
        await TwilioProvider(config, http).send(sms("hi"))
    form = parse_qs(recorder.seen[0].body.decode())
    assert form == {"To": ["+14155550100"], "Body": ["hi"], "MessagingServiceSid": ["MG99"]}


def test_config_comes_from_omnicx_twilio_settings() -> None:
    assert TwilioConfig.from_settings(Settings(twilio_account_sid=None)) is None
    settings = Settings(
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from_number="+15005550006",
    )
    config = TwilioConfig.from_settings(settings)
    assert config is not None
    assert (config.account_sid, config.auth_token.get_secret_value()) == (SID, TOKEN)
    assert config.base_url == "https://api.twilio.com"
    with pytest.raises(ConfigError, match="from number"):
        TwilioConfig.from_settings(Settings(twilio_account_sid=SID, twilio_auth_token=TOKEN))


# Twilio's published example (its libraries test against it): token 12345, this URL and form.
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_verifies_twilios_published_vector() -> None:
    ok = verify_signature(
        auth_token="12345", url=VECTOR_URL, params=VECTOR_PARAMS, signature_header=VECTOR_SIGNATURE
    )
    assert ok


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("12346", VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE),
        ("12345", VECTOR_URL + "&baz=3", VECTOR_PARAMS, VECTOR_SIGNATURE),
        ("12345", VECTOR_URL, {**VECTOR_PARAMS, "Digits": "9999"}, VECTOR_SIGNATURE),
        ("12345", VECTOR_URL, {**VECTOR_PARAMS, "Extra": "1"}, VECTOR_SIGNATURE),
        ("12345", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),
        ("12345", VECTOR_URL, VECTOR_PARAMS, ""),
    ],
)
def test_signature_refuses_any_change(
    token: str, url: str, params: dict[str, str], signature: str
) -> None:
    assert not verify_signature(
        auth_token=token, url=url, params=params, signature_header=signature
    )


def test_signature_accepts_the_url_with_or_without_the_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_signature(
        auth_token="12345", url=with_port, params=VECTOR_PARAMS, signature_header=VECTOR_SIGNATURE
    )


def test_signature_sorts_repeated_parameters() -> None:
    # Twilio's repeated-parameter example: distinct values of a name, sorted.
    params = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    assert verify_signature(
        auth_token="12345",
        url=VECTOR_URL,
        params=params,
        signature_header="IK+Dwps556ElfBT0I3Rgjkr1wJU=",
    )


def test_status_callbacks_parse_to_the_delivery_outcome() -> None:
    base = {"AccountSid": SID, "MessageSid": "SM42", "To": "+14155550100"}
    assert parse_status_callback({**base, "MessageStatus": "delivered"}) == TwilioStatus(
        "SM42", "delivered", None
    )
    assert parse_status_callback({**base, "MessageStatus": "sent"}) == TwilioStatus(
        "SM42", "sent", None
    )
    assert parse_status_callback(
        {**base, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    ) == TwilioStatus("SM42", "undelivered", "30003", prune=False)
    assert parse_status_callback(
        {**base, "MessageStatus": "failed", "ErrorCode": "30005"}
    ) == TwilioStatus("SM42", "failed", "30005", prune=True)
    assert parse_status_callback({**base, "MessageStatus": "queued"}) is None
    assert parse_status_callback({**base, "MessageStatus": "sending"}) is None


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"MessageSid": "SM42"},
        {"MessageStatus": "sent"},
        {"MessageSid": "SM42", "MessageStatus": "lost"},
    ],
)
def test_a_form_that_is_not_a_status_callback_is_refused(form: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        parse_status_callback(form)


async def test_build_makes_the_provider_only_when_configured() -> None:
    settings = Settings(
        twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from_number="+15005550006"
    )
    unset = Settings(twilio_account_sid=None)
    assert twilio_module.configured(settings) and not twilio_module.configured(unset)
    async with httpx.AsyncClient() as http:
        provider: Provider = twilio_module.build(settings, http)  # mypy checks the protocol
        assert isinstance(provider, TwilioProvider)
        with pytest.raises(ConfigError):
            twilio_module.build(unset, http)
