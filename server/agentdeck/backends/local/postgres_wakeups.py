"""Wake-ups through PostgreSQL LISTEN/NOTIFY, for processes on any number of machines.

A process where someone waits keeps one dedicated connection that LISTENs on its data set's
channel (named after the schema, see postgres_sql.notify_channel), read by a daemon thread that
feeds the shared waiter registry; it closes LINGER_SECONDS after the last waiter (wakeups.py).
Publishing sends NOTIFY through the store's pool; supervisors send it from their own connection.
While the listener is connected, waiters poll rarely; when it is not (or not yet, having just
been started by a first waiter), they poll every second, and every waiter re-checks the store
when it (re)connects, so nothing committed while it was away is waited past.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from agentdeck.backends.local.store.postgres import PostgresStore
from agentdeck.backends.local.wakeups import Wakeups

__all__ = ["PostgresWakeups"]

log = logging.getLogger("agentdeck.store")

_LISTENING_POLL_SECONDS = 10.0
_DISCONNECTED_POLL_SECONDS = 1.0
_CHECK_STOP_SECONDS = 1.0


class PostgresWakeups(Wakeups):
    """Wakeups whose transport is NOTIFY on the store's channel; open after the store is open."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__()
        self.store = store
        self._stop: threading.Event | None = None
        self.listening = threading.Event()

    @property
    def fallback_seconds(self) -> float:
        return _LISTENING_POLL_SECONDS if self.listening.is_set() else _DISCONNECTED_POLL_SECONDS

    def close(self) -> None:
        super().close()
        with self._lock:
            if self._stop is not None:
                self._stop.set()
                self._stop = None

    def _start_listening(self) -> None:
        # A waiter registered before LISTEN takes hold is woken when it does (`_wake_all`) and
        # looks at the store again, so starting the listener now loses nothing.
        if self._stop is None and self.store.channel is not None:
            self._stop = threading.Event()
            threading.Thread(target=self._listen, args=(self.store.url, self.store.channel, self._stop), name="agentdeck-listen", daemon=True).start()

    def _stopping(self, stop: threading.Event) -> bool:
        """True when this listener should end: closed, or nobody has waited for LINGER_SECONDS."""
        with self._lock:
            if self._stop is not stop:
                return True
            if self._idle():
                self._stop = None
                stop.set()
                return True
        return False

    async def _send(self, topics: tuple[str, ...]) -> None:
        try:
            await self.store.notify(topics)
        except Exception as exc:  # the change is committed; waiters elsewhere will poll for it
            log.warning("could not send wake-up %s: %s", ",".join(topics), exc)

    def _listen(self, url: str, channel: str, stop: threading.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.listening.set()
                    backoff = 0.2
                    self._wake_all()  # whatever committed before LISTEN took hold is seen now
                    while not stop.is_set() and not self._stopping(stop):
                        for note in conn.notifies(timeout=_CHECK_STOP_SECONDS):
                            for topic in note.payload.splitlines():
                                self._wake(topic)
            except psycopg.Error as exc:
                log.warning("wake-up listener lost its PostgreSQL connection (%s); retrying", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            finally:
                if self.listening.is_set():
                    self.listening.clear()
                    self._wake_all()  # back to polling every second until the listener is back
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
