"""Subscribe to agentdeck resources the way each protocol era does, behind one small interface.

2026-07-28: one `subscriptions/listen` stream (Client.listen). Legacy (2025 handshake):
`resources/subscribe` per URI, with `notifications/resources/updated` arriving through the
client's message handler. Either way the test reads the URIs of updates as they arrive.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp import Client


class Updates:
    """The URIs of resource updates (and "list_changed") a client hears, in arrival order."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](1000)

    def put(self, uri: str) -> None:
        self._send.send_nowait(uri)

    async def next(self, timeout: float = 20.0) -> str:
        with anyio.fail_after(timeout):
            return await self._receive.receive()

    async def wait_for(self, uri: str, timeout: float = 20.0) -> None:
        """Wait until an update for `uri` arrives (earlier updates for other URIs are skipped)."""
        with anyio.fail_after(timeout):
            while await self._receive.receive() != uri:
                pass

    async def none_within(self, seconds: float) -> list[str]:
        """The updates that arrive within `seconds` (a test expects none)."""
        heard: list[str] = []
        with anyio.move_on_after(seconds):
            heard.append(await self._receive.receive())
        return heard


def _legacy_handler(updates: Updates) -> Any:
    async def handle(message: Any) -> None:
        message = getattr(message, "root", message)
        method = getattr(message, "method", None)
        if method == "notifications/resources/updated":
            updates.put(str(message.params.uri))
        elif method == "notifications/resources/list_changed":
            updates.put("list_changed")

    return handle


@contextlib.asynccontextmanager
async def subscribed(server: Any, mode: str, uris: list[str], **client_options: Any) -> AsyncIterator[tuple[Client, Updates]]:
    """A client of `server` (URL, stdio params or transport) subscribed to `uris` in protocol era `mode`."""
    updates = Updates()
    if mode == "legacy":
        async with Client(server, mode="legacy", message_handler=_legacy_handler(updates), **client_options) as client:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe is deprecated at 2026-07-28, and this is the 2025 era
                for uri in uris:
                    await client.subscribe_resource(uri)
            yield client, updates
        return
    async with Client(server, **client_options) as client, client.listen(resource_subscriptions=uris, resources_list_changed=True) as subscription:

        async def pump() -> None:
            async for event in subscription:
                updates.put(getattr(event, "uri", "list_changed"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            yield client, updates
            tg.cancel_scope.cancel()
