"""``omnicx channels``: check that a provider's configuration really reaches someone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from omnicx.db import Database, utcnow
from omnicx.errors import ApiError
from omnicx.messaging import service
from omnicx.messaging.delivery import Delivery
from omnicx.messaging.models import Message, MessageTemplate
from omnicx.messaging.providers.registry import (
    ProviderContext,
    build_providers,
    configured,
    http_client,
)
from omnicx.messaging.schemas import CHANNELS
from omnicx.settings import get_settings

channels_app = typer.Typer(help="Messaging channels and their providers.", no_args_is_help=True)
err = Console(stderr=True)

TEST_TEMPLATE = "omnicx.channel-test"
TEST_VARIANTS = {
    "email": {
        "subject": "OmniCX test message from {{ brand.name }}",
        "html": "<p>This message checks that OmniCX reaches you by email.</p>",
    },
    "sms": {"text": "OmniCX test message from {{ brand.name }}."},
    "push": {"title": "OmniCX test", "body": "This checks that {{ brand.name }} reaches you."},
    "inapp": {"title": "OmniCX test", "body": "This checks the in-app inbox."},
    "webhook": {"payload": {"test": True, "profile_id": "{{ profile.id }}"}},
}


async def _ensure_template(session: AsyncSession) -> None:
    if await service.get_template(session, TEST_TEMPLATE) is None:
        now = utcnow()
        session.add(
            MessageTemplate(
                name=TEST_TEMPLATE,
                description="Used by `omnicx channels test`.",
                category="transactional",
                topic="transactional",
                variants=TEST_VARIANTS,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )


async def channel_test(channel: str, to: str) -> Message:
    settings = get_settings()
    db = Database(settings)
    from omnicx.app import build_hooks  # the roof's registry of reactions; lazy, as in cli.py

    hooks = build_hooks(settings)
    http = http_client(settings)
    try:
        request = service.SendRequest(
            to=to, message=TEST_TEMPLATE, channel=channel, idempotency_key=f"test.{uuid.uuid4()}"
        )

        async def work(session: AsyncSession) -> Message:
            await _ensure_template(session)
            await session.flush()
            submitted = await service.submit(
                session,
                settings,
                hooks,
                request=request,
                available=configured(settings),
                now=utcnow(),
            )
            return submitted.message

        message = await db.transaction(work)
        if message.status == "queued" and message.provider:
            providers = build_providers(ProviderContext(settings=settings, http=http))
            delivery = Delivery(db, settings, hooks, providers)
            await delivery.run_pass(message.provider, only=message.id)
            async with db.session() as session:
                found = await session.get(Message, message.id)
                assert found is not None
                message = found
            for provider in providers.values():
                close = getattr(provider, "close", None)
                if close is not None:
                    await close()
        return message
    finally:
        await http.aclose()
        await db.dispose()


@channels_app.command("test")
def test(
    channel: Annotated[str, typer.Argument(help=f"One of {', '.join(CHANNELS)}.")],
    to: Annotated[str, typer.Option("--to", help="External id, e.g. email:ana@example.com.")],
) -> None:
    """Send a test message on CHANNEL to a customer now, through the configured provider."""
    if channel not in CHANNELS:
        raise typer.BadParameter(f"one of {', '.join(CHANNELS)}", param_hint="CHANNEL")
    try:
        message = asyncio.run(channel_test(channel, to))
    except ApiError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    err.print(
        f"message {message.id} by {message.provider or '-'} to "
        f"{(message.to or {}).get('value', '-')}: {message.status}"
        + (f" ({message.reason})" if message.reason else "")
    )
    print(message.status)
    if message.status not in ("sent", "delivered"):
        raise typer.Exit(1)
