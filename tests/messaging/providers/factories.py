"""Outbound messages for provider tests."""

from __future__ import annotations

from typing import Any

from omnicx.messaging.providers.base import Address, Channel, Content, OutboundMessage


def outbound(
    channel: Channel, to: Address, content: Content, *, id: int = 1, **metadata: Any
) -> OutboundMessage:
    return OutboundMessage(
        id=id,
        idempotency_key=f"test-{id}",
        channel=channel,
        profile_id="p-1",
        to=to,
        content=content,
        metadata=metadata,
    )
