"""Progress notifications for tool calls, and keep-alives for the ones that take a while.

A client whose request timeout restarts on progress (and anyone watching) learns that a long
call is alive: a call that has sent nothing for KEEPALIVE_SECONDS sends one notification. One
task per server does this for every call in flight, so a call that ends in milliseconds (nearly
all of them) pays for a set insert and removal rather than a task of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio

__all__ = ["KEEPALIVE_SECONDS", "KeepAlive", "Progress"]

KEEPALIVE_SECONDS = 1.0
"""A call silent this long sends a notification. Clients are promised one at least every 2 s;
1 s plus one tick (TICK_SECONDS) leaves room for a busy machine."""

TICK_SECONDS = 0.5
"""How often the keep-alive task looks at the calls in flight."""


class Progress:
    """The progress notifications of one tool call: the handler's own, plus keep-alives in between."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx, self.name, self.step, self.last = ctx, name, 0, ""
        self.started = self.sent_at = time.monotonic()
        self.done = self.sending = False

    async def report(self, _step: float, message: str) -> None:
        """What a handler calls to tell its progress (`progress=` in the tool handlers)."""
        self.last = message
        await self._send(message)

    async def _send(self, message: str) -> None:
        self.step += 1
        self.sent_at = time.monotonic()
        await self.ctx.report_progress(self.step, None, message)

    async def keep_alive(self) -> None:
        """One keep-alive notification, unless the call ended meanwhile."""
        try:
            if not self.done:
                waited = f"{self.name} still waiting ({time.monotonic() - self.started:.0f} s)"
                await self._send(f"{waited}; {self.last}" if self.last else waited)
        except Exception:  # the client went away; the call itself will notice
            self.done = True
        finally:
            self.sending = False


class KeepAlive:
    """The calls in flight on one server, and the one task that keeps the slow ones alive."""

    def __init__(self) -> None:
        self._calls: set[Progress] = set()

    @contextmanager
    def watching(self, progress: Progress) -> Iterator[Progress]:
        self._calls.add(progress)
        try:
            yield progress
        finally:
            progress.done = True
            self._calls.discard(progress)

    async def run(self) -> None:
        """Until cancelled (the server's lifespan ends): send each silent call's keep-alive."""
        async with anyio.create_task_group() as sends:
            while True:
                await anyio.sleep(TICK_SECONDS)
                now = time.monotonic()
                for progress in list(self._calls):
                    if not progress.done and not progress.sending and now - progress.sent_at >= KEEPALIVE_SECONDS:
                        # Marked before the send starts, so neither this task nor another server
                        # lifespan's starts a second one for the same silence.
                        progress.sending, progress.sent_at = True, now
                        sends.start_soon(progress.keep_alive)
