"""Messaging fixtures: settings pointing at a real local SMTP server, the delivery loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI

from omnicx.db import Database
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.providers.registry import ProviderContext, build_providers, http_client
from omnicx.settings import Settings
from tests.conftest import SECRET
from tests.messaging.servers import Mailbox, smtp_server


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailbox(smtp: tuple[Controller, Mailbox]) -> Mailbox:
    return smtp[1]


@pytest.fixture
def settings(database_url: str, smtp: tuple[Controller, Mailbox]) -> Settings:
    return Settings(
        database_url=database_url,
        env="test",
        secret_key=SECRET,
        public_url="http://omnicx.test",
        smtp_host="127.0.0.1",
        smtp_port=smtp[0].port,
        smtp_tls="none",
        email_from="hello@alpine.example",
        webhook_allowed_networks=["127.0.0.0/8"],
    )


@pytest.fixture
async def delivery(app: FastAPI, db: Database, settings: Settings) -> AsyncIterator[Delivery]:
    """The delivery loop with the real providers the settings configure."""
    async with http_client(settings) as http:
        providers = build_providers(ProviderContext(settings=settings, http=http))
        yield Delivery(db, settings, app.state.hooks, providers)
        for provider in providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                await close()


@pytest.fixture
async def marketer(db: Database) -> dict[str, str]:
    from omnicx.auth.service import Role
    from tests.conftest import new_token

    return {"Authorization": f"Bearer {await new_token(db, Role.marketer)}"}


__all__ = ["httpx"]
