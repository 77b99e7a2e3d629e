"""Conversation fixtures: settings whose push (FCM), SMS (Twilio) and email (SMTP) providers
are real local servers shaped like the services, and the messaging delivery loop on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from starlette.responses import JSONResponse, Response

from omnicx.auth.service import Role
from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers.registry import ProviderContext, build_providers, http_client
from omnicx.settings import Settings
from tests.conftest import SECRET, new_token, new_write_key
from tests.messaging.providers.servers import Recorder, Seen, serve
from tests.messaging.providers.test_fcm import PROJECT, service_account
from tests.messaging.servers import Mailbox, smtp_server

TWILIO_SID, TWILIO_TOKEN = "AC0123456789abcdef", "twilio-token"
PUBLIC_URL = "http://omnicx.test"


@dataclass
class Outside:
    """The services messages leave through: FCM, Twilio, an SMTP mailbox."""

    fcm: Recorder
    twilio: Recorder
    mailbox: Mailbox
    smtp_port: int

    def pushes(self) -> list[Seen]:
        return [s for s in self.fcm.seen if s.path.endswith("messages:send")]

    def texts(self) -> list[Seen]:
        return [s for s in self.twilio.seen if s.path.endswith("/Messages.json")]


def fcm_shaped(seen: Seen) -> Response:
    """Google's token endpoint and FCM's send (the OAuth flow itself is tested in messaging)."""
    if seen.path == "/token":
        return JSONResponse({"access_token": "ya29.test", "expires_in": 3599})
    assert seen.path == f"/v1/projects/{PROJECT}/messages:send"
    assert seen.headers["authorization"] == "Bearer ya29.test"
    return JSONResponse({"name": f"projects/{PROJECT}/messages/0:{len(seen.body)}"})


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def outside(rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[Outside, str, str]]:
    fcm = Recorder(fcm_shaped)
    twilio = Recorder(
        lambda seen: JSONResponse({"sid": f"SM{len(twilio.seen)}", "status": "queued"}, 201)
    )
    with smtp_server() as (controller, mailbox):
        async with serve(fcm) as fcm_url, serve(twilio) as twilio_url:
            outside = Outside(fcm, twilio, mailbox, controller.port)
            yield outside, fcm_url, twilio_url


@pytest.fixture
def settings(
    database_url: str, outside: tuple[Outside, str, str], rsa_key: rsa.RSAPrivateKey
) -> Settings:
    out, fcm_url, twilio_url = outside
    return Settings(
        database_url=database_url,
        env="test",
        secret_key=SECRET,
        public_url=PUBLIC_URL,
        smtp_host="127.0.0.1",
        smtp_port=out.smtp_port,
        smtp_tls="none",
        email_from="help@alpine.example",
        fcm_service_account_json=service_account(rsa_key, f"{fcm_url}/token"),
        fcm_base_url=fcm_url,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_from_number="+15005550006",
        twilio_base_url=twilio_url,
        embedded_worker=False,
    )


@pytest.fixture
def services(outside: tuple[Outside, str, str]) -> Outside:
    return outside[0]


@pytest.fixture
async def delivery(app: FastAPI, db: Database, settings: Settings) -> AsyncIterator[Delivery]:
    """The messaging delivery loop with the providers the settings configure."""
    async with http_client(settings) as http:
        providers = build_providers(ProviderContext(settings=settings, http=http))
        yield Delivery(db, settings, app.state.hooks, providers)
        for provider in providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                await close()


@pytest.fixture
async def agent(db: Database) -> dict[str, str]:
    """An agent's token (named ``agent-test``)."""
    return {"Authorization": f"Bearer {await new_token(db, Role.agent)}"}


@pytest.fixture
async def admin(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {await new_token(db, Role.admin)}"}


@pytest.fixture
async def web_key(db: Database) -> str:
    return await new_write_key(db, "website")


def widget(write_key: str, **ids: str) -> dict[str, str]:
    """Widget credentials as headers: anonymous_id=…, or user_id=… and user_hash=…."""
    headers = {"X-OmniCX-Write-Key": write_key}
    for name, value in ids.items():
        headers[f"X-OmniCX-{name.replace('_', '-').title()}"] = value
    return headers
