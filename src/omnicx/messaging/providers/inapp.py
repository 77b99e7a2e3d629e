"""In-app messages: the inbox is the delivery log itself (``messages`` rows of channel
``inapp``), and connected app clients hear of a new one at once over WebSocket or SSE.

Sending therefore writes nothing: the delivery loop marks the row ``sent`` (now in the inbox)
and this provider pushes the card to every live connection of the profile in this process,
answering ``delivered`` when at least one client took it. Live delivery does not cross processes
(an API process and a separate ``omnicx worker`` do not share the hub); a client that was not
connected, or connected elsewhere, finds the message in its inbox on the next fetch. Because the
provider is idempotent (a repeated push carries the same id, and clients keep one card per id),
an interrupted in-app send is simply tried again: exactly once in the inbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, ClassVar

from omnicx.messaging.providers.base import (
    Channel,
    InAppContent,
    OutboundMessage,
    PermanentError,
    SendResult,
)

QUEUE_SIZE = 100


class InboxHub:
    """Live connections per profile, in this process."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}

    def subscribe(self, profile_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.setdefault(profile_id, set()).add(queue)
        return queue

    def unsubscribe(self, profile_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._queues.get(profile_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[profile_id]

    def publish(self, profile_id: str, item: dict[str, Any]) -> int:
        """Hand ``item`` to every live connection of the profile; how many took it."""
        taken = 0
        for queue in list(self._queues.get(profile_id, ())):
            try:
                queue.put_nowait(item)
                taken += 1
            except asyncio.QueueFull:  # a stuck client; it will catch up from the inbox
                continue
        return taken

    def connections(self, profile_id: str) -> int:
        return len(self._queues.get(profile_id, ()))


HUB = InboxHub()  # one per process: the connections live in this process's event loop


def card(message_id: int, content: InAppContent, created_at: str, state: str) -> dict[str, Any]:
    return {"id": message_id, **asdict(content), "state": state, "created_at": created_at}


class InAppProvider:
    channel: ClassVar[Channel] = Channel.inapp
    name: ClassVar[str] = "inapp"

    def __init__(self, hub: InboxHub = HUB) -> None:
        self.hub = hub

    async def send(self, message: OutboundMessage) -> SendResult:
        if not isinstance(message.content, InAppContent):
            raise PermanentError("in-app messages need in-app content")
        created = str(message.metadata.get("created_at", ""))
        taken = self.hub.publish(
            message.profile_id, card(message.id, message.content, created, "unread")
        )
        return SendResult(
            provider_message_id=f"inapp-{message.id}",
            status="delivered" if taken else "sent",
            detail={"live_connections": taken},
        )
