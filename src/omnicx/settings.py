"""Configuration: every knob is an ``OMNICX_*`` environment variable (or a line in ``.env``).

Read it through :func:`get_settings`; tests build their own :class:`Settings` and hand it to
``create_app`` instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me-omnicx-development-secret"


def normalise_database_url(url: str) -> str:
    """Pick the async driver for a plain SQLAlchemy URL (``sqlite://``, ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database {scheme!r}: use sqlite:// or postgresql://")


class Settings(BaseSettings):
    """OmniCX settings, read from ``OMNICX_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="OMNICX_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = Field(
        "development", description="`production` refuses to start with the default secret key."
    )
    database_url: str = Field(
        "sqlite:///omnicx.db",
        description="SQLAlchemy URL; sqlite:///path.db (default ./omnicx.db) or postgresql://…",
    )
    secret_key: SecretStr = Field(
        SecretStr(DEFAULT_SECRET),
        description="Signs links and keys the hashes of erased identifiers.",
    )
    host: str = Field("127.0.0.1", description="Address `omnicx serve` binds to.")
    port: int = Field(8000, description="Port `omnicx serve` listens on.")
    db_pool_size: int = Field(10, description="PostgreSQL connections per process.")

    embedded_worker: bool = Field(
        True, description="Run the background worker inside `omnicx serve` too."
    )
    worker_poll_seconds: float = Field(
        0.25, description="How long an idle worker waits before looking for due work again."
    )

    identity_limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1},
        description="Most identifiers of a type one profile may hold, as JSON "
        '(e.g. {"user_id": 1, "email": 3}); types not listed are unlimited.',
    )
    identity_priority: list[str] = Field(
        default_factory=lambda: ["user_id", "email", "phone"],
        description="Identifier types from strongest to weakest; unlisted types come after, "
        "then anonymous_id last.",
    )
    identity_blocklist: list[str] = Field(
        default_factory=list,
        description="Extra identifier values never used to link profiles (JSON list), on top of "
        "null, undefined, anonymous, 0, -1, empty and all zeros.",
    )
    default_phone_region: str = Field(
        "US", description="Region assumed for phone numbers written without a country code."
    )

    cart_abandon_minutes: int = Field(
        60, ge=1, description="Idle minutes after which an open cart is abandoned."
    )
    pickup_reminder_hours: int = Field(
        24, ge=0, description="Hours before a pickup's hold expires that the reminder fires."
    )

    max_event_bytes: int = Field(32 * 1024, description="Largest single event accepted.")
    max_batch_bytes: int = Field(500 * 1024, description="Largest /v1/batch body accepted.")
    max_batch_events: int = Field(2500, description="Most events in one /v1/batch.")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET:
            raise ValueError("OMNICX_SECRET_KEY must be set in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
