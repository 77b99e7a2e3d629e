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
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port on which `omnicx worker` serves its own Prometheus counters; 0: none.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address the worker's metrics port listens on."
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

    # Journeys (omnicx.journeys).
    journey_cache_seconds: float = Field(
        5.0, ge=0, description="How long a process trusts its list of live journeys' events."
    )
    journey_hold_seconds: float = Field(
        30.0, gt=0, description="A paused journey's due timers look again after this long."
    )
    journey_max_steps: int = Field(
        100, ge=1, description="Most nodes one wake-up may execute before it must wait."
    )
    journey_batch_size: int = Field(
        200, ge=1, le=1000, description="Journey timers a worker handles in one transaction."
    )

    analytics_margin: float = Field(
        1.0, gt=0, le=1, description="Gross margin applied to revenue in CLV (1 = revenue)."
    )
    analytics_discount_rate: float = Field(
        0.10, ge=0, lt=1, description="Annual discount rate for predicted CLV."
    )
    analytics_refresh_hours: float = Field(
        24, ge=0, description="Hours between CLV / computed-trait refreshes (0: only by CLI)."
    )
    analytics_fit_sample: int = Field(
        250_000,
        ge=1000,
        description="Most customers (a fixed random sample) the CLV models are fitted on; "
        "predictions cover everyone.",
    )
    analytics_touch_events: list[str] = Field(
        default_factory=lambda: [
            "Message Sent",
            "Message Delivered",
            "Message Opened",
            "Message Clicked",
            "Conversation Started",
            "Journey Entered",
        ],
        description="Timeline events that count as marketing touches for attribution (JSON).",
    )

    # Conversations (omnicx.conversations): threads, bot, handoff, agents, live updates.
    conversations_reopen_hours: float = Field(
        24.0, ge=0, description="A resolved conversation reopens on a customer message this soon."
    )
    conversations_default_queue: str = Field(
        "support", description="Queue a handed-off conversation waits in unless a rule says else."
    )
    conversations_max_message_chars: int = Field(
        4000, ge=1, description="Longest message body accepted (characters)."
    )
    conversations_rate_limit: int = Field(
        20, ge=1, description="Most customer messages per conversation per rate window."
    )
    conversations_rate_window_seconds: float = Field(
        60.0, gt=0, description="The window of the per-conversation message rate limit."
    )
    conversations_faq_file: str | None = Field(
        None, description="YAML or JSON file of FAQ entries for the bot (besides the API's)."
    )
    conversations_faq_threshold: float = Field(
        0.72, gt=0, le=1, description="Least fuzzy-match score (0-1) for the bot to answer."
    )
    conversations_handoff_keywords: list[str] = Field(
        default_factory=lambda: ["agent", "human", "person", "representative", "someone"],
        description="Words that make the bot hand off at once (JSON list).",
    )
    conversations_bot_misses: int = Field(
        2, ge=1, description="Unanswered customer messages in a row before the bot hands off."
    )
    conversations_handoff_topics: list[str] = Field(
        default_factory=list,
        description="FAQ topics the bot answers and then hands off (JSON list), e.g. refunds.",
    )
    conversations_business_hours: dict[str, str] = Field(
        default_factory=dict,
        description='Opening hours per weekday, e.g. {"mon": "09:00-17:00"}; unset: always '
        "open, a day not listed: closed.",
    )
    conversations_timezone: str = Field("UTC", description="Timezone of the business hours.")
    conversations_away_message: str = Field(
        "Thanks! Our team is away right now; we will answer as soon as we are back.",
        description="Reply sent on handoff outside business hours.",
    )
    conversations_presence_seconds: float = Field(
        45.0, gt=0, description="A widget not heard from this long counts as offline."
    )
    conversations_reply_template: str = Field(
        "conversation-reply",
        description="Message template of an agent reply to an offline customer (made if absent).",
    )
    conversations_csat_template: str = Field(
        "conversation-csat",
        description="Message template of the CSAT request on resolve (made if absent).",
    )
    conversations_sms_url: str | None = Field(
        None, description="Public URL Twilio posts incoming SMS to (/c/twilio/sms), if proxied."
    )
    conversations_link_days: int = Field(
        14, ge=1, description="Days a link back into a conversation stays valid."
    )

    max_event_bytes: int = Field(32 * 1024, description="Largest single event accepted.")
    max_batch_bytes: int = Field(500 * 1024, description="Largest /v1/batch body accepted.")
    max_batch_events: int = Field(2500, description="Most events in one /v1/batch.")

    # Operations (omnicx.ops): logs, limits, headers, retention.
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object a line with the request id; `text`: plain."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )
    max_request_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body any route accepts (413 beyond)."
    )
    rate_limit_ingest: int = Field(
        1000, ge=0, description="Requests per second per write key on /v1/* (0: unlimited)."
    )
    rate_limit_api: int = Field(
        3000, ge=0, description="Requests per minute per staff token on /api/* (0: unlimited)."
    )
    console_csp: str = Field(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'",
        description="Content-Security-Policy of /console pages.",
    )
    retention_events_days: int = Field(
        0, ge=0, description="Raw events older than this are deleted (0: kept forever)."
    )
    retention_message_bodies_days: int = Field(
        0, ge=0, description="Sent messages' bodies older than this are blanked (0: kept)."
    )

    # Messaging (omnicx.messaging): links, email, webhooks, in-app and the send-time policies.
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL customers reach OmniCX at (unsubscribe, tracking, in-app client).",
    )
    email_from: str = Field(
        "noreply@example.com", description="Sender address when the brand kit sets none."
    )
    smtp_host: str | None = Field(None, description="SMTP server; unset disables email.")
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user name (AUTH), if any.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (upgrade on connect), tls (implicit, port 465) or none."
    )
    smtp_verify_tls: bool = Field(True, description="Verify the SMTP server's certificate.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds per SMTP command.")
    smtp_pool_size: int = Field(4, ge=1, description="SMTP connections kept open and reused.")
    webhook_url: str | None = Field(
        None, description="Default target of webhook messages (a template variant may set one)."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Key of the X-OmniCX-Signature HMAC; derived from the secret key if unset.",
    )
    webhook_allowed_networks: list[str] = Field(
        default_factory=list,
        description="Private/loopback networks webhooks may reach anyway (JSON list of CIDRs).",
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds per webhook request.")
    inapp_secret: SecretStr | None = Field(
        None,
        description="Key of the in-app client's user hash (HMAC of the user id); derived from "
        "the secret key if unset.",
    )
    messaging_default_timezone: str = Field(
        "UTC", description="Timezone of customers without a valid `timezone` trait."
    )
    messaging_quiet_hours: str | None = Field(
        None, description="Local quiet hours, e.g. 21:00-08:00; unset: none."
    )
    messaging_quiet_hours_channels: list[str] = Field(
        default_factory=lambda: ["sms", "push", "webpush"],
        description="Channels quiet hours apply to.",
    )
    messaging_caps: dict[str, dict[Literal["day", "week"], int]] = Field(
        default_factory=dict,
        description="Marketing messages per customer and channel (or all), per day/week (JSON).",
    )
    messaging_implied_consent: list[str] = Field(
        default_factory=list,
        description="Channels where marketing needs no recorded consent (only no opt-out).",
    )
    messaging_auto_order: list[str] = Field(
        default_factory=lambda: ["push", "webpush", "email", "sms", "inapp"],
        description="`auto` channel order for customers with no engagement yet.",
    )
    messaging_max_attempts: int = Field(6, ge=1, description="Sends tried before `failed`.")
    messaging_retry_seconds: float = Field(
        30.0, gt=0, description="First retry delay; doubles per attempt."
    )
    messaging_retry_max_seconds: float = Field(3600.0, gt=0, description="Longest retry delay.")
    messaging_lease_seconds: float = Field(
        300.0, gt=0, description="After this a send left `sending` by a dead worker is resolved."
    )
    messaging_batch_size: int = Field(200, ge=1, description="Messages a worker claims at once.")
    messaging_concurrency: int = Field(
        100, ge=1, description="Sends in flight per provider per worker."
    )
    messaging_rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description='Sends per second per provider and worker, e.g. {"smtp": 50}.',
    )

    # Channel providers (omnicx.messaging.providers): each is on once its credentials are set.
    twilio_account_sid: str | None = Field(None, description="Twilio account SID; unset: no SMS.")
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token.")
    twilio_from_number: str | None = Field(None, description="E.164 number SMS are sent from.")
    twilio_messaging_service_sid: str | None = Field(
        None, description="Twilio messaging service (MG…), used instead of the from number."
    )
    twilio_base_url: str = Field(
        "https://api.twilio.com", description="Twilio REST API base URL (or a compatible one)."
    )
    twilio_status_callback_url: str | None = Field(
        None, description="Public URL Twilio posts delivery statuses to."
    )
    vapid_private_key: SecretStr | None = Field(
        None, description="Web push VAPID P-256 private key (PEM or base64url); unset: no web push."
    )
    vapid_subject: str = Field(
        "mailto:ops@example.com", description="VAPID contact (mailto: or https:) push services see."
    )
    fcm_service_account_file: str | None = Field(
        None, description="Path to the Firebase service-account JSON; unset: no FCM."
    )
    fcm_service_account_json: SecretStr | None = Field(
        None, description="The service-account JSON itself (instead of the file)."
    )
    fcm_project_id: str | None = Field(
        None, description="Firebase project; defaults to the service account's."
    )
    fcm_base_url: str = Field("https://fcm.googleapis.com", description="FCM HTTP v1 base URL.")
    fcm_token_uri: str | None = Field(
        None, description="OAuth token endpoint; defaults to the service account's token_uri."
    )
    apns_team_id: str | None = Field(None, description="Apple team ID; unset: no APNs.")
    apns_key_id: str | None = Field(None, description="Key ID of the APNs auth key (.p8).")
    apns_private_key: SecretStr | None = Field(None, description="The .p8 key's PEM text.")
    apns_private_key_file: str | None = Field(None, description="Path to the .p8 key instead.")
    apns_topic: str | None = Field(None, description="The app's bundle ID (apns-topic).")
    apns_base_url: str = Field(
        "https://api.push.apple.com",
        description="APNs server; https://api.sandbox.push.apple.com for development builds.",
    )

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
