"""Request and response bodies of the messaging API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Category = Literal["marketing", "transactional"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,199}$"
CHANNELS = ("email", "sms", "push", "webpush", "inapp", "webhook")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Colors(Strict):
    primary: str = "#1f2937"
    accent: str = "#2563eb"
    background: str = "#f5f5f4"
    text: str = "#111827"


class BrandKit(Strict):
    """Applied to every variant: ``brand.*`` in templates, the layout around every email."""

    name: str = Field("OmniCX", max_length=200)
    logo_url: str | None = Field(None, max_length=2000)
    colors: Colors = Field(default_factory=Colors)
    from_email: str | None = Field(None, max_length=320, description="Sender address of emails.")
    from_name: str | None = Field(None, max_length=200, description="Sender name of emails.")
    reply_to: str | None = Field(None, max_length=320)
    sender_names: dict[str, str] = Field(
        default_factory=dict, description="Sender name per channel, e.g. an SMS sender id."
    )
    sign_off: str = Field("", max_length=2000)
    footer: str = Field("", max_length=5000)
    legal_address: str = Field("", max_length=1000)
    partials: dict[str, str] = Field(
        default_factory=dict,
        description="Liquid snippets for {% render 'name' %} / {% include 'name' %}.",
    )
    email_layout: str | None = Field(
        None,
        max_length=200_000,
        description="Liquid HTML around every email's body ({{ content }}); a plain default if "
        "unset.",
    )


class EmailVariant(Strict):
    subject: str = Field(max_length=2000)
    html: str = Field(max_length=500_000)
    text: str | None = Field(None, max_length=500_000, description="Derived from html if unset.")


class SmsVariant(Strict):
    text: str = Field(max_length=5000)


class PushVariant(Strict):
    title: str = Field(max_length=500)
    body: str = Field(max_length=5000)
    deep_link: str | None = Field(None, max_length=2000)
    image_url: str | None = Field(None, max_length=2000)


class InAppVariant(Strict):
    title: str = Field(max_length=500)
    body: str = Field(max_length=20_000)
    image_url: str | None = Field(None, max_length=2000)
    link: str | None = Field(None, max_length=2000)


class WebhookVariant(Strict):
    url: str | None = Field(None, max_length=2000, description="Defaults to OMNICX_WEBHOOK_URL.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="JSON whose string values are Liquid templates."
    )


class Variants(Strict):
    """One variant per channel; ``push`` also serves ``webpush`` when that has none."""

    email: EmailVariant | None = None
    sms: SmsVariant | None = None
    push: PushVariant | None = None
    webpush: PushVariant | None = None
    inapp: InAppVariant | None = None
    webhook: WebhookVariant | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Variants:
        if not any(getattr(self, c) is not None for c in CHANNELS):
            raise ValueError("a template needs at least one channel variant")
        return self


class TemplateWrite(Strict):
    description: str = Field("", max_length=1000)
    category: Category = "marketing"
    topic: str | None = Field(
        None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Subscription group consent is checked against (default: the category).",
    )
    variants: Variants


class TemplateRead(BaseModel):
    id: int
    name: str
    description: str
    category: str
    topic: str
    variants: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class PreviewRequest(Strict):
    channel: Literal["email", "sms", "push", "webpush", "inapp", "webhook"]
    to: str | None = Field(None, description="External id of the profile to render for.")
    data: dict[str, Any] = Field(default_factory=dict)
    event: dict[str, Any] = Field(default_factory=dict)


class PreviewRead(BaseModel):
    channel: str
    content: dict[str, Any]


class MessageCreate(Strict):
    to: str = Field(min_length=1, max_length=600, description="External id of the customer.")
    message: str = Field(pattern=NAME_PATTERN, description="Template name.")
    channel: str | list[str] = Field(
        "auto", description="A channel, `auto`, or a fallback chain such as [push, inapp, email]."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="`data.*` in the template.")
    event: dict[str, Any] = Field(default_factory=dict, description="The triggering event.")
    idempotency_key: str | None = Field(
        None, min_length=1, max_length=200, description="Same key, same message: sent once."
    )
    quiet_hours: Literal["defer", "drop"] = "defer"

    @field_validator("channel")
    @classmethod
    def _known_channels(cls, value: str | list[str]) -> str | list[str]:
        names = [value] if isinstance(value, str) else value
        if not names:
            raise ValueError("an empty fallback chain")
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("a channel appears twice in the chain")
        for name in names:
            if name not in CHANNELS and not (name == "auto" and isinstance(value, str)):
                raise ValueError(f"unknown channel {name!r}: one of {', '.join(CHANNELS)}, auto")
        return value


class MessageRead(BaseModel):
    id: int
    idempotency_key: str
    profile_id: str | None
    message: str
    category: str
    topic: str
    requested: str
    channel: str | None
    provider: str | None
    choice_reason: str
    status: str
    reason: str | None
    attempts: int
    to: str | None
    send_at: datetime
    due_at: datetime | None
    history: list[dict[str, Any]]
    content: dict[str, Any]
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None


class MessagePage(BaseModel):
    items: list[MessageRead]


class SuppressionCreate(Strict):
    kind: Literal["email", "phone", "push_token", "webpush"]
    value: str = Field(min_length=1, max_length=2048)
    reason: Literal["hard_bounce", "complaint", "manual"] = "manual"


class InboxItem(BaseModel):
    id: int
    title: str
    body: str
    image_url: str | None
    link: str | None
    data: dict[str, Any]
    state: str
    created_at: datetime


class InboxPage(BaseModel):
    items: list[InboxItem]
    unread: int


class InboxUpdate(Strict):
    state: Literal["read", "dismissed", "unread"]
