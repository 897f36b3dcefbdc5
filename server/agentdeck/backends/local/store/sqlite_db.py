"""The local platform's SQLite store: one file in WAL mode, shared by the processes of one machine.

`SqliteDb` is synchronous: the run supervisor uses it directly (as its RunLog) and the server
through `SqliteStore` (sqlite.py), which runs its quick calls on the event loop when the write
lock is free (`attempt`) and the others in a worker thread. Each public method
is one transaction; what must have exactly one winner (claiming a task, advancing a reader's
cursor, taking an idempotency key) happens inside `BEGIN IMMEDIATE`, so concurrent agentdeck
processes on the same file serialize on it. Lease rules come from leases.py. The schema is
a list of versioned migrations (sqlite_sql.py), applied at open under the same write lock.

Stdlib only: the run supervisor imports it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from agentdeck.backends.local import leases
from agentdeck.backends.local.output import cap_output
from agentdeck.backends.local.store.base import UnknownClaim, new_id
from agentdeck.backends.local.store.run_filter import runs_page
from agentdeck.backends.local.store.sqlite_sql import MIGRATIONS, SCHEMA_VERSION, Q
from agentdeck.backends.local.store.unread import Step, streak_of, unread

__all__ = ["SqliteDb", "WriteLockBusy", "open_reader"]

_CLOCK_SKEW_SECONDS = 60.0
_BUSY_TIMEOUT_MS = 30_000
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

T = TypeVar("T")


class WriteLockBusy(Exception):
    """Another connection holds the write lock, and `SqliteDb.attempt` does not wait for it."""


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection: in WAL mode it never waits for writers, so reads may run inline."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 1000")
    return conn


def _created_after(after: float) -> tuple[str, list[Any]]:
    # The seq bound lets SQLite walk only the newer runs instead of scanning the table;
    # it starts a minute early because processes stamp created_at slightly out of seq order.
    return Q["created_after"], [after, after - _CLOCK_SKEW_SECONDS]


def _as_dict(row: sqlite3.Row) -> dict[str, Any]:
    # Four times faster than dict(row), which looks each column up by name (1.7 against 7.1 us
    # for a run's 25 columns), and every row the store returns goes through here.
    return dict(zip(row.keys(), row, strict=True))


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class SqliteDb:
    """Synchronous access to the SQLite file; async callers use SqliteStore."""

    def __init__(self, path: Path, *, waits: bool = True) -> None:
        """Open (and migrate) the file. With `waits` false the connection never waits for another
        one's write lock: it is for `attempt`, and expects a waiting SqliteDb to have migrated the file."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS if waits else 0}")
        if waits:
            self._db.execute("PRAGMA journal_mode = WAL")  # kept by the file: set once, by the connection that migrates
            self._migrate()
        else:
            # Its commits never copy the WAL into the file (that syncs megabytes): `checkpoint`
            # does, from a waiting connection, off the event loop.
            self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._db.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        with self._tx():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            current = int(row[0]) if row else 0
            for version, script in MIGRATIONS:
                if version > current:
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
            if current < SCHEMA_VERSION:
                self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def schema_version(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def attempt(self, call: Callable[[SqliteDb], T]) -> T:
        """`call(self)` now as one write transaction, on a connection opened with `waits` false;
        WriteLockBusy at once when another connection holds the write lock (nothing is done
        then, so the call can be made again elsewhere)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode in _BUSY:
                raise WriteLockBusy from None
            raise
        try:
            result = call(self)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file, as far as readers allow, without waiting for them."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._db.in_transaction:
            # Inside `attempt`: its COMMIT ends this block too, and an exception raised here
            # reaches it and rolls back everything (no method catches one from a transaction).
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, name: str, *args: Any) -> dict[str, Any] | None:
        row = self._db.execute(Q[name], args).fetchone()
        return _as_dict(row) if row else None

    def _all(self, name: str, *args: Any) -> list[dict[str, Any]]:
        return [_as_dict(r) for r in self._db.execute(Q[name], args)]

    def query(self, sql: str, args: tuple[Any, ...], *, write: bool = False) -> list[dict[str, Any]]:
        """Rows of one statement from outside this module (overview_sql.py); `write` takes the write lock."""
        if not write:
            return [_as_dict(r) for r in self._db.execute(sql, args)]
        with self._tx():
            return [_as_dict(r) for r in self._db.execute(sql, args)]

    # idempotency ------------------------------------------------------------------------

    def _remembered(self, scope: str, key: str | None) -> str | None:
        if key is None:
            return None
        row = self._db.execute(Q["idem_get"], (scope, key)).fetchone()
        return row[0] if row else None

    def _remember(self, scope: str, key: str | None, object_id: str, now: float) -> None:
        if key is not None:
            self._db.execute(Q["idem_put"], (scope, key, object_id, now))

    # runs -------------------------------------------------------------------------------

    def create_run(self, run: dict[str, Any], scope: str, key: str | None) -> tuple[dict[str, Any], bool]:
        """Insert a queued run, or return the run an earlier call with the same key made."""
        with self._tx():
            existing = self._remembered(scope, key)
            if existing is not None:
                return self.get_run(existing) or {}, False
            row = {**run, "metadata": _dumps(run.get("metadata"))}
            self._db.execute(Q["insert_run"], row)
            self._remember(scope, key, run["id"], run["created_at"])
        return self.get_run(run["id"]) or {}, True

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._one("get_run", run_id)

    @staticmethod
    def read_run(reader: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
        row = reader.execute(Q["get_run"], (run_id,)).fetchone()
        return _as_dict(row) if row else None

    def count_children(self, run_id: str) -> int:
        return int(self._db.execute(Q["count_children"], (run_id,)).fetchone()[0])

    def list_runs(self, filters: dict[str, Any], limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """Newest first, keyset-paged on seq so runs added meanwhile neither repeat nor vanish."""
        sql, args = runs_page(filters, limit, before_seq, mark="?", created_after=_created_after)
        return [_as_dict(r) for r in self._db.execute(sql, args)]

    def set_supervisor(self, run_id: str, pid: int, host: str | None = None, now: float | None = None) -> None:
        self._db.execute(Q["run_supervisor"], (pid, host, now, run_id))

    def run_heartbeat(self, run_id: str, now: float) -> dict[str, Any] | None:
        return self._one("run_heartbeat", now, run_id)

    def mark_started(self, run_id: str, child_pid: int, now: float) -> None:
        self._db.execute(Q["run_started"], (now, child_pid, run_id))

    def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        """Record the end of a run; False when it had already ended."""
        cur = self._db.execute(Q["run_finished"], (state, now, exit_code, error_code, error_message, run_id))
        return cur.rowcount == 1

    def set_worktree(self, run_id: str, worktree: dict[str, Any]) -> None:
        self._db.execute(Q["run_worktree"], (json.dumps(worktree), run_id))

    def request_cancel(self, run_id: str) -> None:
        self._db.execute(Q["run_cancel"], (run_id,))

    def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int:
        """Append output lines as events; past `max_bytes` of output, one note then nothing. Returns last seq."""
        if not events:
            return 0
        with self._tx():
            run = self.get_run(run_id)
            if run is None:
                return 0
            rows, added = cap_output(events, run["last_seq"], run["output_bytes"], max_bytes)
            now = time.time()
            self._db.executemany(Q["insert_event"], [(run_id, seq, now, kind, text) for seq, kind, text in rows])
            last = rows[-1][0] if rows else run["last_seq"]
            self._db.execute(Q["bump_events"], (last, added, run_id))
        return int(last)

    def run_events(self, run_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        return self._all("run_events", run_id, after_seq, limit)

    # channels ---------------------------------------------------------------------------

    def list_channels(self) -> list[dict[str, Any]]:
        return self._all("channels")

    def get_message(self, message_id: int) -> dict[str, Any] | None:
        return self._one("get_message", message_id)

    def append_message(self, message: dict[str, Any], scope: str, key: str | None) -> dict[str, Any]:
        with self._tx():
            existing = self._remembered(scope, key)
            if existing is not None:
                return self.get_message(int(existing)) or {}
            channel = self._one("channel_touch", message["channel"], message["sent_at"], message["sent_at"])
            row = _as_dict(
                self._db.execute(
                    Q["insert_message"],
                    (message["channel"], message["sender"], message["body"], message["kind"], message["correlation_id"], message["reply_to"], message["sent_at"]),
                ).fetchone()
            )
            head = streak_of(channel, message["sender"], row["id"])
            self._db.execute(Q["mark_streak"], {"id": row["id"], "head": head})
            self._db.execute(Q["channel_streak"], (message["sender"], head, message["channel"]))
            self._remember(scope, key, str(row["id"]), message["sent_at"])
        return row

    def _drive(self, steps: Step) -> list[dict[str, Any]]:
        """Run a unread.py read: each of its steps is one named query."""
        rows: list[dict[str, Any]] | None = None
        try:
            while True:
                name, params = steps.send(rows)  # type: ignore[arg-type]  # the first send is None, as a generator needs
                rows = [_as_dict(r) for r in self._db.execute(Q[name], params)]
        except StopIteration as done:
            return list(done.value)

    def latest_messages(self, channel: str, limit: int) -> list[dict[str, Any]]:
        return self._all("latest", channel, limit)

    def read_messages(self, channel: str, identity: str, limit: int, after: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Messages after the reader's cursor (or `after`, which resets it), not its own; moves the cursor past them."""
        with self._tx():
            row = self._db.execute(Q["cursor_get"], (channel, identity)).fetchone()
            stored = row[0] if row else None
            start = after if after is not None else (stored or 0)
            rows = self._drive(unread(channel, start, identity, limit + 1))
            found, more = rows[:limit], len(rows) > limit
            cursor = found[-1]["id"] if found else start
            if cursor != stored:
                self._db.execute(Q["cursor_put"], (channel, identity, cursor))
        return found, more

    # tasks ------------------------------------------------------------------------------

    def create_task(self, task: dict[str, Any], scope: str, key: str | None) -> dict[str, Any]:
        with self._tx():
            existing = self._remembered(scope, key)
            if existing is not None:
                return self.get_task(existing) or {}
            now = task["created_at"]
            self._db.execute(
                Q["insert_task"],
                (task["id"], task["queue"], task["title"], _dumps(task["payload"]), task["priority"], task["max_attempts"], now, now),
            )
            self._remember(scope, key, task["id"], now)
        return self.get_task(task["id"]) or {}

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        return self._one("get_task", task_id)

    def claim_next(self, queue: str, holder: str, lease_seconds: float, now: float) -> dict[str, Any] | None:
        """Give the best queued task to `holder`: inside one write transaction, one winner."""
        with self._tx():
            self._db.execute(Q["expire_attempts"], {"queue": queue, "now": now})
            self._db.execute(Q["expire"], {"queue": queue, "now": now})
            row = self._db.execute(Q["next_ready"], (queue,)).fetchone()
            if row is None:
                return None
            run_id, token = new_id("trun"), secrets.token_urlsafe(18)
            task = _as_dict(self._db.execute(Q["claim"], (run_id, token, holder, now + lease_seconds, now, row[0])).fetchone())
            self._db.execute(Q["insert_attempt"], (run_id, task["id"], task["attempts"], holder, now))
        return task

    def _held(self, run_id: str, token: str, now: float, holder: str) -> dict[str, Any]:
        task = self._one("claimed_task", run_id)
        if task is None:
            raise UnknownClaim(run_id)
        leases.check_held(task, run_id, token, now, holder)
        return task

    def heartbeat(self, run_id: str, token: str, lease_seconds: float, now: float, *, holder: str) -> dict[str, Any]:
        with self._tx():
            task = self._held(run_id, token, now, holder)
            return _as_dict(self._db.execute(Q["extend"], (now + lease_seconds, now, task["id"])).fetchone())

    def settle(self, run_id: str, token: str, outcome: str, now: float, *, holder: str, result: Any = None, error: str | None = None) -> dict[str, Any]:
        """End a claim: outcome is completed, retry, failed or released (see leases.next_state)."""
        with self._tx():
            task = self._held(run_id, token, now, holder)
            state, refund = leases.next_state(task, outcome)
            row = self._db.execute(Q["settle"], (state, refund, _dumps(result), error, now, task["id"])).fetchone()
            self._db.execute(Q["end_attempt"], (now, outcome, run_id))
        return _as_dict(row)
