"""The listening side of local wake-ups: many in-process waiters per topic, one listener per process.

A waiter registers for a topic ("channel:general", "run:<id>"), checks the store, then waits;
whoever commits a change publishes its topics, which wakes waiters here at once and, through
the implementation's own transport, in every other process sharing the store:

    Wakeups            the waiter registry, shared
    ├── SocketWakeups  SQLite: Unix datagram sockets in a per-data-dir folder (notify.py)
    └── PostgresWakeups  PostgreSQL: LISTEN/NOTIFY (postgres_wakeups.py)

A listener runs only while someone in the process waits, and LINGER_SECONDS after. It is a
daemon thread, not a task, because the server may run several sessions
(each with its own lifespan and possibly its own event loop) and any of them may end first;
the thread hands each wake-up to the waiter's event loop. Transports can lose a wake-up, so
waiters also poll slowly: a lost wake-up costs latency, never data.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel

from agentdeck.backends.local.notify import Notifier

__all__ = ["LINGER_SECONDS", "SocketWakeups", "Wakeups"]

_FALLBACK_POLL_SECONDS = 1.0
LINGER_SECONDS = 30.0
"""A process listens while anyone in it waits, and this long after the last one registered, so
a loop of waits starts its listener once. A process where nobody waits does not listen, and the
others' changes cost it nothing (before, every process woke a thread for each of them: 0.2 to
0.7 ms of CPU per task in issue 23's four-process claims benchmark)."""
_Waiter = tuple[anyio.Event, anyio.lowlevel.EventLoopToken]


class Wakeups:
    """Waiters register for a topic, check the store, then `wait`; `publish` wakes all processes."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self._lock = threading.Lock()
        self._enabled = False  # open() was called, close() not yet
        self._registered_at = 0.0  # time.monotonic() of the latest register

    @property
    def fallback_seconds(self) -> float:
        """The longest a waiter sleeps without a wake-up before it checks the store again."""
        return _FALLBACK_POLL_SECONDS

    def open(self) -> None:
        """Listen for other processes' wake-ups from now on, whenever someone here waits (and
        LINGER_SECONDS after): the first waiter starts the listener. Safe to call more than once."""
        self._enabled = True

    def close(self) -> None:
        """Stop listening, for good."""
        self._enabled = False

    def _start_listening(self) -> None:
        """Start the transport's listener unless it runs; called under `_lock` by `register`."""

    def _idle(self) -> bool:
        """True (under `_lock`) when nobody has waited for LINGER_SECONDS: the listener may stop."""
        return not self._waiters and time.monotonic() - self._registered_at > LINGER_SECONDS

    async def _send(self, topics: tuple[str, ...]) -> None:
        """Deliver `topics` to the other processes sharing the store."""

    def register(self, topic: str) -> anyio.Event:
        """Before the waiter looks at the store, so nothing committed after that look goes unheard."""
        event = anyio.Event()
        with self._lock:
            self._waiters[topic].add((event, anyio.lowlevel.current_token()))
            self._registered_at = time.monotonic()
            if self._enabled:
                self._start_listening()
        return event

    def unregister(self, topic: str, event: anyio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(topic)
            if waiters is None:
                return
            for waiter in [w for w in waiters if w[0] is event]:
                waiters.discard(waiter)
            if not waiters:
                del self._waiters[topic]

    async def wait(self, event: anyio.Event, timeout: float) -> None:
        """Wait until woken, `timeout` passes, or the slow fallback poll is due."""
        with anyio.move_on_after(min(timeout, self.fallback_seconds)):
            await event.wait()

    async def publish(self, *topics: str, announced: bool = False) -> None:
        """Wake waiters here at once and in every other process sharing the store; with
        `announced`, the store's transaction already told the other processes."""
        for topic in topics:
            with self._lock:
                waiters = self._waiters.pop(topic, set())
            for event, _ in waiters:
                event.set()
        if not announced:
            await self._send(topics)

    def _wake(self, topic: str) -> None:
        """Wake a topic's waiters from the listener thread."""
        with self._lock:
            waiters = self._waiters.pop(topic, set())
        self._set(waiters)

    def _wake_all(self) -> None:
        """Wake every waiter from the listener thread, so each checks the store again."""
        with self._lock:
            waiters = {w for group in self._waiters.values() for w in group}
            self._waiters.clear()
        self._set(waiters)

    @staticmethod
    def _set(waiters: set[_Waiter]) -> None:
        for event, token in waiters:
            try:
                anyio.from_thread.run_sync(event.set, token=token)
            except RuntimeError:
                pass  # that event loop has ended


class SocketWakeups(Wakeups):
    """Wake-ups between the processes of one machine: a Unix datagram socket per process that waits."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._sock: socket.socket | None = None
        self._path: str | None = None
        self._notify = Notifier(directory)

    def close(self) -> None:
        super().close()
        self._notify.close()
        with self._lock:
            self._unbind()

    def _start_listening(self) -> None:
        if self._sock is not None or not hasattr(socket, "AF_UNIX"):
            return
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._path = str(self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self._path)
        sock.settimeout(1.0)  # the listener looks at least this often whether it is still needed
        self._sock = sock
        self._notify.own = self._path
        threading.Thread(target=self._listen, args=(sock,), name="agentdeck-wakeups", daemon=True).start()

    def _unbind(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._path:
            try:
                os.unlink(self._path)
            except OSError:
                pass
            self._path = self._notify.own = None

    def _listen(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                with self._lock:
                    if sock is not self._sock:
                        return  # closed meanwhile
                    if self._idle():
                        self._unbind()
                        return
                continue
            except OSError:
                return  # closed
            for topic in data.decode(errors="replace").splitlines():
                self._wake(topic)

    async def _send(self, topics: tuple[str, ...]) -> None:
        # Not to our own socket: publish has woken this process's waiters already, and the
        # datagram would only wake the listener thread to contend for the GIL for nothing.
        self._notify(*topics)
