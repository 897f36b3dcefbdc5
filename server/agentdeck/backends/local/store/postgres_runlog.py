"""A run supervisor's record of its run in PostgreSQL: one blocking psycopg connection.

The supervisor is a process of its own, so it uses plain synchronous psycopg (imported only
for a PostgreSQL store) instead of the server's pool, and wakes waiting processes on every
machine with NOTIFY on the data set's channel. It never migrates: the server that spawned it
already has. A run outlives database restarts and failovers of up to about a minute: a lost
connection is opened again and the write repeated (every write is safe to repeat, except
that output lines whose commit was cut off may be stored twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg.rows import dict_row

from agentdeck.backends.local.output import cap_output
from agentdeck.backends.local.store.base import Row
from agentdeck.backends.local.store.postgres_sql import Q, notify_channel

__all__ = ["PostgresRunLog"]

T = TypeVar("T")
Conn = psycopg.Connection[Row]

# Waits between attempts when the connection is lost: about a minute in all.
_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class PostgresRunLog:
    """RunLog over one autocommit connection; `notify` is the supervisor's wake-up."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Conn | None = None
        schema = self._do(lambda conn: conn.execute(Q["current_schema"]).fetchone())
        self.channel = notify_channel(str((schema or {}).get("current_schema")))

    def _connect(self) -> Conn:
        return psycopg.connect(self._url, autocommit=True, row_factory=dict_row, connect_timeout=10, application_name="agentdeck-supervisor")

    def _do(self, op: Callable[[Conn], T]) -> T:
        """Run `op` on the connection, opening it again and repeating `op` while the database is away."""
        delays = iter(_RETRY_DELAYS)
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                return op(self._conn)
            except psycopg.OperationalError:
                delay = next(delays, None)
                if delay is None:
                    raise
                time.sleep(delay)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def notify(self, *topics: str) -> None:
        self._do(lambda conn: conn.execute(Q["notify"], (self.channel, "\n".join(topics))))

    def set_supervisor(self, run_id: str, pid: int, host: str | None = None, now: float | None = None) -> None:
        self._do(lambda conn: conn.execute(Q["run_supervisor"], (pid, host, now, run_id)))

    def run_heartbeat(self, run_id: str, now: float) -> Row | None:
        return self._do(lambda conn: conn.execute(Q["run_heartbeat"], (now, run_id)).fetchone())

    def get_run(self, run_id: str) -> Row | None:
        return self._do(lambda conn: conn.execute(Q["get_run"], (run_id,)).fetchone())

    def mark_started(self, run_id: str, child_pid: int, now: float) -> None:
        self._do(lambda conn: conn.execute(Q["run_started"], (now, child_pid, run_id)))

    def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int:
        if not events:
            return 0

        def append(conn: Conn) -> int:
            with conn.transaction():
                run = conn.execute(Q["lock_run"], (run_id,)).fetchone()
                if run is None:
                    return 0
                rows, added = cap_output(events, run["last_seq"], run["output_bytes"], max_bytes)
                now = time.time()
                with conn.cursor() as cur:
                    cur.executemany(Q["insert_event"], [(run_id, seq, now, kind, text) for seq, kind, text in rows])
                last = rows[-1][0] if rows else run["last_seq"]
                conn.execute(Q["bump_events"], (last, added, run_id))
            return int(last)

        return self._do(append)

    def set_worktree(self, run_id: str, worktree: Row) -> None:
        self._do(lambda conn: conn.execute(Q["run_worktree"], (json.dumps(worktree), run_id)))

    def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        cur = self._do(lambda conn: conn.execute(Q["run_finished"], (state, now, exit_code, error_code, error_message, run_id)))
        return cur.rowcount == 1
