"""A recording fake for any channel, for unit tests of the logic around providers.

It keeps every message it was handed (``sent``) and answers from a script: each queued outcome
(a :class:`SendResult` or a provider error to raise) is used once, in order; with the script
empty it answers ``sent``. Real providers are proven against real local servers instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import ClassVar

from omnicx.messaging.providers.base import Channel, OutboundMessage, ProviderError, SendResult


class FakeProvider:
    channel: ClassVar[Channel] = Channel.email
    name: ClassVar[str] = "fake"

    def __init__(self, channel: Channel | str, name: str | None = None) -> None:
        # Per-instance channel and name: one fake class serves every channel.
        self.channel = Channel(channel)  # type: ignore[misc]
        self.name = name or f"fake-{self.channel.value}"  # type: ignore[misc]
        self.sent: list[OutboundMessage] = []
        self.calls = 0
        self.script: deque[SendResult | ProviderError] = deque()
        self.gate: asyncio.Event | None = None  # set by a test to hold sends until it opens
        self.entered = asyncio.Event()  # set once a send has begun

    def fail_next(self, *errors: ProviderError) -> None:
        self.script.extend(errors)

    async def send(self, message: OutboundMessage) -> SendResult:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.popleft() if self.script else None
        if isinstance(outcome, ProviderError):
            raise outcome
        self.sent.append(message)
        return outcome or SendResult(provider_message_id=f"{self.name}-{message.id}")
