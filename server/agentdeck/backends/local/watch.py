"""Watches the store for changes to the resources clients are subscribed to.

The MCP layer tells the watcher which resource URIs have subscribers; one loop waits on their
wake-up topics (wakeups.py: the same datagrams or NOTIFYs that wake a waiting receive, from any
process or replica sharing the store), reads what the store holds now, and reports each URI
whose state moved since it last looked. Because it compares states rather than trusting each
wake-up, a lost wake-up only delays a change until the waiters' slow fallback poll.

    URI                                 topic            state compared
    agentdeck://runs/{id}[/events]      run:{id}         (state, last output seq)
    agentdeck://channels/{name}         channel:{name}   newest message id (and who sent the new ones)
    LIST (the sets of runs and channels) runs, channels  (newest run id, number of channels)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from agentdeck.backends.local.store import Store
from agentdeck.backends.local.wakeups import Wakeups
from agentdeck.errors import AgentdeckError

__all__ = ["LIST", "Change", "Watcher"]

log = logging.getLogger("agentdeck.watch")

LIST = "agentdeck://*"
"""The pseudo-URI for "the set of runs or channels changed"."""

_RUN, _CHANNEL = "agentdeck://runs/", "agentdeck://channels/"
_SENDERS_WINDOW = 50  # a burst larger than this since the last look names no senders


@dataclass(frozen=True)
class Change:
    """A watched URI whose state moved. `senders`: for a channel, who sent the new messages (None: unknown)."""

    uri: str
    senders: frozenset[str] | None = None


def _topics(uri: str) -> tuple[str, ...]:
    if uri == LIST:
        return ("runs", "channels")
    if uri.startswith(_RUN):
        return (f"run:{uri.removeprefix(_RUN).split('/')[0]}",)
    return (f"channel:{uri.removeprefix(_CHANNEL)}",)


def watchable(uri: str) -> bool:
    if uri == LIST:
        return True
    if uri.startswith(_RUN):
        rest = uri.removeprefix(_RUN).split("/")
        return bool(rest[0]) and (len(rest) == 1 or rest[1:] == ["events"])
    return uri.startswith(_CHANNEL) and "/" not in uri.removeprefix(_CHANNEL) and bool(uri.removeprefix(_CHANNEL))


class Watcher:
    """Reports changes of the subscribed URIs through `publish`; run `run()` in a task group."""

    def __init__(self, store: Store, wakeups: Wakeups, publish: Callable[[Change], Awaitable[None]]) -> None:
        self.store = store
        self.wakeups = wakeups
        self.publish = publish
        self._counts: Counter[str] = Counter()
        self._seen: dict[str, Any] = {}
        self._kick = anyio.Event()
        self._lock = anyio.Lock()

    async def add(self, uri: str) -> None:
        """Start watching `uri`; changes after this returns are reported."""
        if not watchable(uri):
            return
        if self._counts[uri] == 0:
            try:
                self._seen[uri] = await self._state(uri)
            except AgentdeckError:
                self._seen[uri] = None  # the store is away; the first look that works reports
        self._counts[uri] += 1
        self._kick.set()

    def remove(self, uri: str) -> None:
        if self._counts[uri] <= 1:
            self._counts.pop(uri, None)
            self._seen.pop(uri, None)
        else:
            self._counts[uri] -= 1

    async def run(self) -> None:
        # Each server session may enter the lifespan; one loop per watcher is enough.
        async with self._lock:
            await self._loop()

    async def _loop(self) -> None:
        due = set(self._counts)
        while True:
            self._kick = anyio.Event()
            events = {topic: self.wakeups.register(topic) for uri in self._counts for topic in _topics(uri)}
            try:
                for uri in [u for u in list(self._counts) if u in due]:
                    await self._check(uri)
                with anyio.move_on_after(self.wakeups.fallback_seconds):
                    await _any_set([self._kick, *events.values()])
                fired = {topic for topic, event in events.items() if event.is_set()}
                due = {u for u in self._counts if fired & set(_topics(u))} if fired else set(self._counts)
            finally:
                for topic, event in events.items():
                    self.wakeups.unregister(topic, event)

    async def _check(self, uri: str) -> None:
        before, senders = self._seen.get(uri), None
        try:
            if uri.startswith(_CHANNEL):
                state, senders = await self._channel(uri, before)
            else:
                state = await self._state(uri)
        except AgentdeckError as exc:
            log.debug("cannot look at %s now: %s", uri, exc.message)
            return
        if uri not in self._counts or state == before:
            return
        self._seen[uri] = state
        await self.publish(Change(uri, senders))

    async def _state(self, uri: str) -> Any:
        if uri == LIST:
            newest = await self.store.list_runs({}, 1, None)
            return (newest[0]["id"] if newest else None, len(await self.store.list_channels()))
        if uri.startswith(_RUN):
            row = await self.store.get_run(uri.removeprefix(_RUN).split("/")[0])
            return (row["state"], row["last_seq"]) if row else None
        latest = await self.store.latest_messages(uri.removeprefix(_CHANNEL), 1)
        return latest[-1]["id"] if latest else 0

    async def _channel(self, uri: str, before: Any) -> tuple[Any, frozenset[str] | None]:
        """The newest message id, and who sent the messages after `before` (None: too many to tell)."""
        rows = await self.store.latest_messages(uri.removeprefix(_CHANNEL), _SENDERS_WINDOW)
        new = [r for r in rows if r["id"] > (before or 0)]
        known = len(new) < len(rows) or len(rows) < _SENDERS_WINDOW
        return (rows[-1]["id"] if rows else 0), (frozenset(r["sender"] for r in new) if known else None)


async def _any_set(events: list[anyio.Event]) -> None:
    """Return once any of `events` is set."""
    async with anyio.create_task_group() as tg:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        for event in events:
            tg.start_soon(wait, event)
