"""Live notifications over MCP: the one module that touches the SDK's subscription machinery.

The watcher (backends/local/watch.py) reports which subscribed resource changed; this module
turns each change into an SDK `ServerEvent` on the server's bus and gets it to the clients that
asked, in both protocol eras:

- 2026-07-28 `subscriptions/listen`: the SDK's `ListenHandler` serves each stream from our bus.
  We wrap it to tell the watcher which URIs the stream wants, and to note who is listening, so
  the bus can hold back a channel update that client may not hear.
- 2025 `resources/subscribe` / `resources/unsubscribe`, which MCPServer does not serve: we keep
  each connection's subscriptions and send `notifications/resources/updated` on its own channel
  (stdio, or the standalone stream of a stateful HTTP connection).

A notification is a hint to read again, never the data: a client that reconnects subscribes
again and re-reads, and misses nothing.
"""

from __future__ import annotations

import contextvars
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp import MCPError
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourcesListChanged, ResourceUpdated, ServerEvent
from mcp.types import INVALID_REQUEST, EmptyResult, SubscribeRequestParams, SubscriptionsListenRequestParams, UnsubscribeRequestParams

from agentdeck import sdk
from agentdeck.backends import Deck
from agentdeck.backends.local.watch import LIST, Change, Watcher
from agentdeck.identity import caller_of

__all__ = ["NotificationBus", "client_identity", "install"]

log = logging.getLogger("agentdeck.subscriptions")

_LEGACY_SEND_SECONDS = 5.0
_STATELESS = (
    "resources/subscribe needs a session to send updates on, and this HTTP server is stateless: "
    "subscribe with subscriptions/listen (protocol 2026-07-28), or through a server started without --stateless"
)


def client_identity(ctx: ServerRequestContext[Any, Any], deck: Deck) -> str:
    """Who the client behind this request is: the identity channel messages are filtered for.

    Over HTTP the caller the transport authenticated (identity.py), else the process's own.
    """
    scope = getattr(ctx.request, "scope", None) or {}
    return (caller_of(scope.get("user")) or deck.owner).identity


@dataclass(frozen=True)
class _ChannelUpdated(ResourceUpdated):
    """A channel got messages; `senders` says from whom (None: not known, so everyone hears)."""

    senders: frozenset[str] | None = None


def _may_hear(identity: str | None, event: ServerEvent) -> bool:
    """A client never hears of a channel update made only of its own messages."""
    if identity is None or not isinstance(event, _ChannelUpdated) or event.senders is None:
        return True
    return bool(event.senders - {identity})


def _event(change: Change) -> ServerEvent:
    if change.uri == LIST:
        return ResourcesListChanged()
    if change.uri.startswith("agentdeck://channels/"):
        return _ChannelUpdated(uri=change.uri, senders=change.senders)
    return ResourceUpdated(uri=change.uri)


# Set for the duration of one listen request: the bus reads it when that stream subscribes.
_listener: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentdeck_listener", default=None)


class NotificationBus(InMemorySubscriptionBus):
    """The server's subscription bus: filters each listen stream by its client, and feeds legacy connections."""

    def __init__(self) -> None:
        super().__init__()
        # connection -> {uri: (identity, release)}; `release` stops the watching, once, when the
        # client unsubscribes, cannot be reached, or its connection is gone.
        self._legacy: weakref.WeakKeyDictionary[Connection, dict[str, tuple[str, weakref.finalize[Any, Any]]]] = weakref.WeakKeyDictionary()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        identity = _listener.get()

        def filtered(event: ServerEvent) -> None:
            if _may_hear(identity, event):
                listener(event)

        return super().subscribe(filtered)

    async def publish(self, event: ServerEvent) -> None:
        await super().publish(event)
        if isinstance(event, ResourceUpdated):
            for connection, subscribed in list(self._legacy.items()):
                entry = subscribed.get(event.uri)
                if entry is not None and _may_hear(entry[0], event):
                    await self._send_legacy(connection, event.uri)

    async def _send_legacy(self, connection: Connection, uri: str) -> None:
        try:
            with anyio.fail_after(_LEGACY_SEND_SECONDS):
                await connection.send_resource_updated(uri)
        except Exception as exc:  # a gone client: drop its subscriptions, keep serving the rest
            log.debug("dropping the subscriptions of a connection that cannot be reached: %s", exc)
            for _, release in self._legacy.pop(connection, {}).values():
                release()

    def legacy_subscribed(self, connection: Connection, uri: str) -> bool:
        return uri in self._legacy.get(connection, {})

    def legacy_subscribe(self, connection: Connection, uri: str, identity: str, release: Callable[[], None]) -> bool:
        """Note a legacy subscription; False (and `release` unused) when the connection already had it."""
        subscribed = self._legacy.setdefault(connection, {})
        if uri in subscribed:
            return False
        subscribed[uri] = (identity, weakref.finalize(connection, release))
        return True

    def legacy_unsubscribe(self, connection: Connection, uri: str) -> None:
        entry = self._legacy.get(connection, {}).pop(uri, None)
        if entry is not None:
            entry[1]()

    async def publish_change(self, change: Change) -> None:
        await self.publish(_event(change))


def install(server: MCPServer[Any], bus: NotificationBus, watcher: Watcher, deck: Deck) -> None:
    """Serve listen and legacy subscribe on `server` (built with `subscriptions=bus`), watched by `watcher`."""
    listen_handler = ListenHandler(bus)

    async def listen(ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams) -> Any:
        wanted = list(params.notifications.resource_subscriptions or [])
        if params.notifications.resources_list_changed:
            wanted.append(LIST)
        token, watched = _listener.set(client_identity(ctx, deck)), []
        try:
            for uri in wanted:
                await watcher.add(uri)  # before the ack: a change after the ack is reported
                watched.append(uri)
            return await listen_handler(ctx, params)
        finally:
            _listener.reset(token)
            for uri in watched:
                watcher.remove(uri)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        if ctx.request is not None and sdk.connection(ctx).session_id is None:
            raise MCPError(INVALID_REQUEST, _STATELESS)
        uri, connection = str(params.uri), sdk.connection(ctx)
        if not bus.legacy_subscribed(connection, uri):
            await watcher.add(uri)
            if not bus.legacy_subscribe(connection, uri, client_identity(ctx, deck), lambda: watcher.remove(uri)):
                watcher.remove(uri)  # a concurrent subscribe of the same URI won
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        bus.legacy_unsubscribe(sdk.connection(ctx), str(params.uri))
        return EmptyResult()

    sdk.add_request_handler(server, "subscriptions/listen", SubscriptionsListenRequestParams, listen)
    sdk.add_request_handler(server, "resources/subscribe", SubscribeRequestParams, subscribe)
    sdk.add_request_handler(server, "resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
