from __future__ import annotations

import pytest
from pydantic import ValidationError

from omnicx.settings import Settings, normalise_database_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///omnicx.db", "sqlite+aiosqlite:///omnicx.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_gets_the_async_driver(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValidationError, match="unsupported database"):
        Settings(database_url="mysql://x/y")


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="OMNICX_SECRET_KEY"):
        Settings(env="production")
    assert Settings(env="production", secret_key="s3cret-from-vault").env == "production"


def test_settings_come_from_omnicx_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICX_IDENTITY_LIMITS", '{"user_id": 1, "email": 3}')
    monkeypatch.setenv("OMNICX_MAX_BATCH_EVENTS", "100")
    settings = Settings()
    assert settings.identity_limits == {"user_id": 1, "email": 3}
    assert settings.max_batch_events == 100
