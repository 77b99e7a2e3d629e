"""Journey fixtures: settings with web push on (a VAPID key), so the push channel is offered."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from omnicx.settings import Settings
from tests.conftest import SECRET

VAPID_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        env="test",
        secret_key=SECRET,
        public_url="http://omnicx.test",
        vapid_private_key=VAPID_PEM,
        vapid_subject="mailto:ops@shop.example",
        webhook_allowed_networks=["127.0.0.0/8"],
    )
