"""The local platform's SQLite store: one file in WAL mode, shared by the processes of one machine.

`SqliteDb` is synchronous: the run supervisor uses it directly (as its RunLog) and the server
through `SqliteStore` (sqlite_store.py), which runs it in a worker thread. Each public method
is one transaction; what must have exactly one winner (claiming a task, advancing a reader's
cursor, taking an idempotency key) happens inside `BEGIN IMMEDIATE`, so concurrent agentdeck
processes on the same file serialize on it. Lease rules come from leases.py. The schema is
a list of versioned migrations, applied at open under the same write lock.

Stdlib only: the run supervisor imports it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentdeck.backends.local import leases
from agentdeck.backends.local.output import cap_output
from agentdeck.backends.local.store.base import LeaseError, UnknownClaim, new_id
from agentdeck.backends.local.store.overview_sql import SQLITE_MIGRATION
from agentdeck.backends.local.store.unread import Step, streak_of, unread

__all__ = ["LeaseError", "MIGRATIONS", "SqliteDb", "Store", "UnknownClaim", "new_id", "open_reader"]

# (version, script): applied in order at open, each once; never edit one that has shipped.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent TEXT NOT NULL,
    prompt TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    parent_run_id TEXT,
    depth INTEGER NOT NULL DEFAULT 0,
    thread_id TEXT,
    followup_of TEXT,
    routine TEXT,
    created_by TEXT,
    workspace TEXT,
    ttl_seconds INTEGER,
    metadata TEXT,
    exit_code INTEGER,
    error_code TEXT,
    error_message TEXT,
    supervisor_pid INTEGER,
    child_pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    output_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, seq);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent, seq);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id, seq);
CREATE INDEX IF NOT EXISTS runs_by_routine ON runs (routine, seq);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    last_message_at REAL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    sender TEXT NOT NULL,
    body TEXT NOT NULL,
    kind TEXT NOT NULL,
    correlation_id TEXT,
    reply_to INTEGER,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_channel ON messages (channel, id);
CREATE TABLE IF NOT EXISTS cursors (
    channel TEXT NOT NULL,
    identity TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (channel, identity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    title TEXT NOT NULL,
    payload TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    lease_run_id TEXT,
    claim_token TEXT,
    holder TEXT,
    lease_expires_at REAL,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (queue, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_leases ON tasks (queue, state, lease_expires_at);
CREATE TABLE IF NOT EXISTS task_attempts (
    run_id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    holder TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    object_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
""",
    ),
    (2, "ALTER TABLE runs ADD COLUMN supervisor_host TEXT"),
    (3, "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at)"),
    (4, "ALTER TABLE runs ADD COLUMN worktree TEXT"),  # JSON: a worktree run's plan, then its outcome (worktree.py)
    (5, SQLITE_MIGRATION),
    # claims whose lease expired before expiry closed their attempt: close them now
    (
        6,
        "UPDATE task_attempts SET ended_at = claimed_at, outcome = 'expired' WHERE ended_at IS NULL"
        " AND run_id NOT IN (SELECT lease_run_id FROM tasks WHERE lease_run_id IS NOT NULL)",
    ),
    (7, "ALTER TABLE runs ADD COLUMN heartbeat_at REAL"),
    # streaks of one sender's consecutive messages, so readers skip their own (unread.py)
    (
        8,
        """
ALTER TABLE messages ADD COLUMN streak_head INTEGER;
ALTER TABLE messages ADD COLUMN streak_last INTEGER;
ALTER TABLE channels ADD COLUMN last_sender TEXT;
ALTER TABLE channels ADD COLUMN streak_head INTEGER
""",
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
_CLOCK_SKEW_SECONDS = 60.0

# Named queries: code refers to them by name.
def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection: in WAL mode it never waits for writers, so reads may run inline."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 1000")
    return conn


_Q = {
    # a new queued run
    "insert_run": "INSERT INTO runs (id, agent, prompt, name, state, created_at, parent_run_id, depth, thread_id,"
    " followup_of, routine, created_by, workspace, ttl_seconds, metadata) VALUES (:id, :agent, :prompt, :name,"
    " 'queued', :created_at, :parent_run_id, :depth, :thread_id, :followup_of, :routine, :created_by, :workspace,"
    " :ttl_seconds, :metadata)",
    # one run by id
    "get_run": "SELECT * FROM runs WHERE id = ?",
    # how many runs a run has spawned
    "count_children": "SELECT COUNT(*) FROM runs WHERE parent_run_id = ?",
    # the supervisor started the agent
    "run_started": "UPDATE runs SET state = 'running', started_at = ?, child_pid = ? WHERE id = ? AND state = 'queued'",
    # which process (and machine) supervises the run
    "run_supervisor": "UPDATE runs SET supervisor_pid = ?, supervisor_host = ?, heartbeat_at = ? WHERE id = ?",
    # the supervisor is alive; it learns whether the run was cancelled or declared lost meanwhile
    "run_heartbeat": "UPDATE runs SET heartbeat_at = ? WHERE id = ? RETURNING state, cancel_requested",
    # the end of a run, once
    "run_finished": "UPDATE runs SET state = ?, ended_at = ?, exit_code = ?, error_code = ?, error_message = ?,"
    " child_pid = NULL WHERE id = ? AND state IN ('queued', 'running', 'waiting')",
    # a worktree run's plan, then its outcome
    "run_worktree": "UPDATE runs SET worktree = ? WHERE id = ?",
    # a cancel the supervisor will see even if its signal is lost
    "run_cancel": "UPDATE runs SET cancel_requested = 1 WHERE id = ?",
    # a page of a run's output
    "run_events": "SELECT seq, at, kind, text FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    # one output line
    "insert_event": "INSERT INTO run_events (run_id, seq, at, kind, text) VALUES (?, ?, ?, ?, ?)",
    # the run's output counters after an append
    "bump_events": "UPDATE runs SET last_seq = ?, output_bytes = output_bytes + ? WHERE id = ?",
    # what an idempotency key made before
    "idem_get": "SELECT object_id FROM idempotency WHERE scope = ? AND key = ?",
    # remember what an idempotency key made
    "idem_put": "INSERT INTO idempotency (scope, key, object_id, created_at) VALUES (?, ?, ?, ?)",
    # every channel with its counters
    "channels": "SELECT * FROM channels ORDER BY name",
    # create a channel on its first message, count the others
    "channel_touch": "INSERT INTO channels (name, created_at, message_count, last_message_at) VALUES (?, ?, 1, ?)"
    " ON CONFLICT (name) DO UPDATE SET message_count = message_count + 1, last_message_at = excluded.last_message_at"
    " RETURNING last_sender, streak_head",
    # a new message joins its streak: it names the streak's head, the head names its new last
    "mark_streak": "UPDATE messages SET streak_head = :head, streak_last = CASE WHEN id = :head THEN :id ELSE streak_last END"
    " WHERE id IN (:id, :head)",
    # who sent the channel's last message, and where that streak began
    "channel_streak": "UPDATE channels SET last_sender = ?, streak_head = ? WHERE name = ?",
    # a new message
    "insert_message": "INSERT INTO messages (channel, sender, body, kind, correlation_id, reply_to, sent_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
    # one message by id
    "get_message": "SELECT * FROM messages WHERE id = ?",
    # where a reader stands on a channel
    "cursor_get": "SELECT last_id FROM cursors WHERE channel = ? AND identity = ?",
    # move a reader's cursor
    "cursor_put": "INSERT INTO cursors (channel, identity, last_id) VALUES (?, ?, ?)"
    " ON CONFLICT (channel, identity) DO UPDATE SET last_id = excluded.last_id",
    # the newest messages of a channel, oldest first
    "latest": "SELECT * FROM (SELECT * FROM messages WHERE channel = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
    # a page of a channel's messages after a position, past the reader's own streak if that
    # comes next (unread.py drops the reader's own messages inside the page)
    "after": "SELECT * FROM messages WHERE channel = :channel AND id > coalesce((SELECT CASE WHEN f.sender = :me"
    " THEN (SELECT h.streak_last FROM messages h WHERE h.id = f.streak_head) END FROM (SELECT sender, streak_head"
    " FROM messages WHERE channel = :channel AND id > :position ORDER BY id LIMIT 1) f), :position) ORDER BY id LIMIT :limit",
    # a new queued task
    "insert_task": "INSERT INTO tasks (id, queue, title, payload, priority, state, max_attempts, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
    # one task by id
    "get_task": "SELECT * FROM tasks WHERE id = ?",
    # the attempts of the leases "expire" is about to end
    "expire_attempts": "UPDATE task_attempts SET ended_at = :now, outcome = 'expired' WHERE ended_at IS NULL AND run_id IN"
    " (SELECT lease_run_id FROM tasks WHERE queue = :queue AND state = 'claimed' AND lease_expires_at < :now)",
    # expired leases on their last attempt fail; the others go back to the queue
    "expire": "UPDATE tasks SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
    " error = CASE WHEN attempts >= max_attempts THEN 'lease expired on the last attempt' ELSE error END,"
    " lease_run_id = NULL, claim_token = NULL, holder = NULL, lease_expires_at = NULL, updated_at = :now"
    " WHERE queue = :queue AND state = 'claimed' AND lease_expires_at < :now",
    # the best ready task: highest priority, then oldest
    "next_ready": "SELECT seq FROM tasks WHERE queue = ? AND state = 'queued' ORDER BY priority DESC, seq LIMIT 1",
    # hand a task to a claim
    "claim": "UPDATE tasks SET state = 'claimed', attempts = attempts + 1, lease_run_id = ?, claim_token = ?,"
    " holder = ?, lease_expires_at = ?, updated_at = ? WHERE seq = ? RETURNING *",
    # the record of one claim
    "insert_attempt": "INSERT INTO task_attempts (run_id, task_id, attempt, holder, claimed_at) VALUES (?, ?, ?, ?, ?)",
    # the task a claim was made on
    "claimed_task": "SELECT t.* FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE a.run_id = ?",
    # how a claim ended
    "end_attempt": "UPDATE task_attempts SET ended_at = ?, outcome = ? WHERE run_id = ? AND ended_at IS NULL",
    # a heartbeat's new expiry
    "extend": "UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE id = ? RETURNING *",
    # where a settled task goes
    "settle": "UPDATE tasks SET state = ?, attempts = attempts - ?, result = ?, error = ?, lease_run_id = NULL,"
    " claim_token = NULL, holder = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ? RETURNING *",
}


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class SqliteDb:
    """Synchronous access to the SQLite file; async callers use SqliteStore."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._migrate()

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

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, name: str, *args: Any) -> dict[str, Any] | None:
        row = self._db.execute(_Q[name], args).fetchone()
        return dict(row) if row else None

    def _all(self, name: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(_Q[name], args)]

    def query(self, sql: str, args: tuple[Any, ...], *, write: bool = False) -> list[dict[str, Any]]:
        """Rows of one statement from outside this module (overview_sql.py); `write` takes the write lock."""
        if not write:
            return [dict(r) for r in self._db.execute(sql, args)]
        with self._tx():
            return [dict(r) for r in self._db.execute(sql, args)]

    # idempotency ------------------------------------------------------------------------

    def _remembered(self, scope: str, key: str | None) -> str | None:
        if key is None:
            return None
        row = self._db.execute(_Q["idem_get"], (scope, key)).fetchone()
        return row[0] if row else None

    def _remember(self, scope: str, key: str | None, object_id: str, now: float) -> None:
        if key is not None:
            self._db.execute(_Q["idem_put"], (scope, key, object_id, now))

    # runs -------------------------------------------------------------------------------

    def create_run(self, run: dict[str, Any], scope: str, key: str | None) -> tuple[dict[str, Any], bool]:
        """Insert a queued run, or return the run an earlier call with the same key made."""
        with self._tx():
            existing = self._remembered(scope, key)
            if existing is not None:
                return self.get_run(existing) or {}, False
            row = {**run, "metadata": _dumps(run.get("metadata"))}
            self._db.execute(_Q["insert_run"], row)
            self._remember(scope, key, run["id"], run["created_at"])
        return self.get_run(run["id"]) or {}, True

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._one("get_run", run_id)

    @staticmethod
    def read_run(reader: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
        row = reader.execute(_Q["get_run"], (run_id,)).fetchone()
        return dict(row) if row else None

    def count_children(self, run_id: str) -> int:
        return int(self._db.execute(_Q["count_children"], (run_id,)).fetchone()[0])

    def list_runs(self, filters: dict[str, Any], limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """Newest first, keyset-paged on seq so runs added meanwhile neither repeat nor vanish."""
        where, args = [], []
        for column in ("state", "agent", "parent_run_id", "routine"):
            if filters.get(column) is not None:
                where.append(f"{column} = ?")
                args.append(filters[column])
        if filters.get("created_after") is not None:
            # The seq bound lets SQLite walk only the newer runs instead of scanning the table;
            # it starts a minute early because processes stamp created_at slightly out of seq order.
            where.append("created_at > ? AND seq > coalesce((SELECT seq FROM runs WHERE created_at <= ? ORDER BY created_at DESC LIMIT 1), 0)")
            args += [filters["created_after"], filters["created_after"] - _CLOCK_SKEW_SECONDS]
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
        return [dict(r) for r in self._db.execute(sql, (*args, limit))]

    def set_supervisor(self, run_id: str, pid: int, host: str | None = None, now: float | None = None) -> None:
        self._db.execute(_Q["run_supervisor"], (pid, host, now, run_id))

    def run_heartbeat(self, run_id: str, now: float) -> dict[str, Any] | None:
        return self._one("run_heartbeat", now, run_id)

    def mark_started(self, run_id: str, child_pid: int, now: float) -> None:
        self._db.execute(_Q["run_started"], (now, child_pid, run_id))

    def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        """Record the end of a run; False when it had already ended."""
        cur = self._db.execute(_Q["run_finished"], (state, now, exit_code, error_code, error_message, run_id))
        return cur.rowcount == 1

    def set_worktree(self, run_id: str, worktree: dict[str, Any]) -> None:
        self._db.execute(_Q["run_worktree"], (json.dumps(worktree), run_id))

    def request_cancel(self, run_id: str) -> None:
        self._db.execute(_Q["run_cancel"], (run_id,))

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
            self._db.executemany(_Q["insert_event"], [(run_id, seq, now, kind, text) for seq, kind, text in rows])
            last = rows[-1][0] if rows else run["last_seq"]
            self._db.execute(_Q["bump_events"], (last, added, run_id))
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
            row = dict(
                self._db.execute(
                    _Q["insert_message"],
                    (message["channel"], message["sender"], message["body"], message["kind"], message["correlation_id"], message["reply_to"], message["sent_at"]),
                ).fetchone()
            )
            head = streak_of(channel, message["sender"], row["id"])
            self._db.execute(_Q["mark_streak"], {"id": row["id"], "head": head})
            self._db.execute(_Q["channel_streak"], (message["sender"], head, message["channel"]))
            self._remember(scope, key, str(row["id"]), message["sent_at"])
        return row

    def _drive(self, steps: Step) -> list[dict[str, Any]]:
        """Run a unread.py read: each of its steps is one named query."""
        rows: list[dict[str, Any]] | None = None
        try:
            while True:
                name, params = steps.send(rows)  # type: ignore[arg-type]
                rows = [dict(r) for r in self._db.execute(_Q[name], params)]
        except StopIteration as done:
            return list(done.value)

    def latest_messages(self, channel: str, limit: int) -> list[dict[str, Any]]:
        return self._all("latest", channel, limit)

    def read_messages(self, channel: str, identity: str, limit: int, after: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Messages after the reader's cursor (or `after`, which resets it), not its own; moves the cursor past them."""
        with self._tx():
            row = self._db.execute(_Q["cursor_get"], (channel, identity)).fetchone()
            stored = row[0] if row else None
            start = after if after is not None else (stored or 0)
            rows = self._drive(unread(channel, start, identity, limit + 1))
            found, more = rows[:limit], len(rows) > limit
            cursor = found[-1]["id"] if found else start
            if cursor != stored:
                self._db.execute(_Q["cursor_put"], (channel, identity, cursor))
        return found, more

    # tasks ------------------------------------------------------------------------------

    def create_task(self, task: dict[str, Any], scope: str, key: str | None) -> dict[str, Any]:
        with self._tx():
            existing = self._remembered(scope, key)
            if existing is not None:
                return self.get_task(existing) or {}
            now = task["created_at"]
            self._db.execute(
                _Q["insert_task"],
                (task["id"], task["queue"], task["title"], _dumps(task["payload"]), task["priority"], task["max_attempts"], now, now),
            )
            self._remember(scope, key, task["id"], now)
        return self.get_task(task["id"]) or {}

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        return self._one("get_task", task_id)

    def claim_next(self, queue: str, holder: str, lease_seconds: float, now: float) -> dict[str, Any] | None:
        """Give the best queued task to `holder`: inside one write transaction, one winner."""
        with self._tx():
            self._db.execute(_Q["expire_attempts"], {"queue": queue, "now": now})
            self._db.execute(_Q["expire"], {"queue": queue, "now": now})
            row = self._db.execute(_Q["next_ready"], (queue,)).fetchone()
            if row is None:
                return None
            run_id, token = new_id("trun"), secrets.token_urlsafe(18)
            task = dict(self._db.execute(_Q["claim"], (run_id, token, holder, now + lease_seconds, now, row[0])).fetchone())
            self._db.execute(_Q["insert_attempt"], (run_id, task["id"], task["attempts"], holder, now))
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
            return dict(self._db.execute(_Q["extend"], (now + lease_seconds, now, task["id"])).fetchone())

    def settle(self, run_id: str, token: str, outcome: str, now: float, *, holder: str, result: Any = None, error: str | None = None) -> dict[str, Any]:
        """End a claim: outcome is completed, retry, failed or released (see leases.next_state)."""
        with self._tx():
            task = self._held(run_id, token, now, holder)
            state, refund = leases.next_state(task, outcome)
            row = self._db.execute(_Q["settle"], (state, refund, _dumps(result), error, now, task["id"])).fetchone()
            self._db.execute(_Q["end_attempt"], (now, outcome, run_id))
        return dict(row)


Store = SqliteDb
"""The name this class had before the store interface existed; bench/ still uses it."""
