"""The PostgreSQL dialect of the local store: versioned migrations and named queries.

Shared by the server's async store (postgres.py) and the supervisor's blocking run log
(postgres_runlog.py). Tables live in the connection's current schema (the first one on
search_path), so one database can hold several agentdeck data sets side by side. Times are
epoch seconds (double precision) and JSON values are text, so rows read exactly like the
SQLite store's. Stdlib only.
"""

from __future__ import annotations

import hashlib

from agentdeck.backends.local.store.overview_sql import POSTGRES_MIGRATION

__all__ = ["LOCK_IDEMPOTENCY", "LOCK_MIGRATIONS", "MIGRATIONS", "Q", "SCHEMA_VERSION", "notify_channel"]

# First keys of the two-int advisory locks; the second key hashes what is locked.
LOCK_MIGRATIONS = 0x61646B01
LOCK_IDEMPOTENCY = 0x61646B02

# (version, statements): applied in order at start, each once, inside one transaction that
# holds the migrations advisory lock; never edit one that has shipped, add the next.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE runs (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                agent TEXT NOT NULL,
                prompt TEXT NOT NULL,
                name TEXT,
                state TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                ended_at DOUBLE PRECISION,
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
                supervisor_host TEXT,
                child_pid INTEGER,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                last_seq INTEGER NOT NULL DEFAULT 0,
                output_bytes BIGINT NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX runs_by_state ON runs (state, seq)",
            "CREATE INDEX runs_by_agent ON runs (agent, seq)",
            "CREATE INDEX runs_by_parent ON runs (parent_run_id, seq)",
            "CREATE INDEX runs_by_routine ON runs (routine, seq)",
            """CREATE TABLE run_events (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL,
                text TEXT NOT NULL,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE channels (
                name TEXT PRIMARY KEY,
                created_at DOUBLE PRECISION NOT NULL,
                message_count BIGINT NOT NULL DEFAULT 0,
                last_message_at DOUBLE PRECISION
            )""",
            """CREATE TABLE messages (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                channel TEXT NOT NULL,
                sender TEXT NOT NULL,
                body TEXT NOT NULL,
                kind TEXT NOT NULL,
                correlation_id TEXT,
                reply_to BIGINT,
                sent_at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX messages_by_channel ON messages (channel, id)",
            """CREATE TABLE cursors (
                channel TEXT NOT NULL,
                identity TEXT NOT NULL,
                last_id BIGINT NOT NULL,
                PRIMARY KEY (channel, identity)
            )""",
            """CREATE TABLE tasks (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                queue TEXT NOT NULL,
                title TEXT NOT NULL,
                payload TEXT,
                priority INTEGER NOT NULL DEFAULT 0,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                lease_run_id TEXT,
                claim_token TEXT,
                holder TEXT,
                lease_expires_at DOUBLE PRECISION,
                result TEXT,
                error TEXT
            )""",
            "CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq) WHERE state = 'queued'",
            "CREATE INDEX tasks_leases ON tasks (queue, lease_expires_at) WHERE state = 'claimed'",
            """CREATE TABLE task_attempts (
                run_id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                holder TEXT NOT NULL,
                claimed_at DOUBLE PRECISION NOT NULL,
                ended_at DOUBLE PRECISION,
                outcome TEXT
            )""",
            """CREATE TABLE idempotency (
                scope TEXT NOT NULL,
                key TEXT NOT NULL,
                object_id TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (scope, key)
            )""",
        ],
    ),
    (2, ["CREATE INDEX runs_by_created ON runs (created_at)"]),
    (3, ["ALTER TABLE runs ADD COLUMN worktree TEXT"]),  # JSON: a worktree run's plan, then its outcome (worktree.py)
    (4, POSTGRES_MIGRATION),
    # claims whose lease expired before expiry closed their attempt: close them now
    (
        5,
        [
            "UPDATE task_attempts SET ended_at = claimed_at, outcome = 'expired' WHERE ended_at IS NULL"
            " AND run_id NOT IN (SELECT lease_run_id FROM tasks WHERE lease_run_id IS NOT NULL)"
        ],
    ),
    (6, ["ALTER TABLE runs ADD COLUMN heartbeat_at DOUBLE PRECISION"]),
    # streaks of one sender's consecutive messages, so readers skip their own (unread.py)
    (
        7,
        [
            "ALTER TABLE messages ADD COLUMN streak_head BIGINT, ADD COLUMN streak_last BIGINT",
            "ALTER TABLE channels ADD COLUMN last_sender TEXT, ADD COLUMN streak_head BIGINT",
        ],
    ),
    # the dashboard counts finished tasks per queue through indexes of their own, as it counts
    # queued and claimed ones through tasks_ready and tasks_leases
    (
        8,
        [
            "CREATE INDEX tasks_completed ON tasks (queue) WHERE state = 'completed'",
            "CREATE INDEX tasks_failed ON tasks (queue) WHERE state = 'failed'",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Named queries: code refers to them by name.
Q = {
    # the schema tables live in; NULL when search_path names no existing schema
    "current_schema": "SELECT current_schema()",
    # one migrator at a time per schema; held until the migration transaction ends
    "lock_migrations": f"SELECT pg_advisory_xact_lock({LOCK_MIGRATIONS}, hashtext(current_schema()))",
    # the ledger of applied migrations
    "create_versions": "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)",
    # the newest applied migration
    "schema_version": "SELECT COALESCE(MAX(version), 0) AS version FROM schema_version",
    # record one applied migration
    "add_version": "INSERT INTO schema_version (version, applied_at) VALUES (%s, extract(epoch FROM now()))",
    # wake the processes listening on this data set's channel
    "notify": "SELECT pg_notify(%s, %s)",
    # serialize the users of one idempotency key until this transaction ends
    "lock_key": f"SELECT pg_advisory_xact_lock({LOCK_IDEMPOTENCY}, hashtext(%s::text || chr(31) || %s::text))",
    # what an idempotency key made before
    "idem_get": "SELECT object_id FROM idempotency WHERE scope = %s AND key = %s",
    # remember what an idempotency key made
    "idem_put": "INSERT INTO idempotency (scope, key, object_id, created_at) VALUES (%s, %s, %s, %s)",
    # a new queued run
    "insert_run": "INSERT INTO runs (id, agent, prompt, name, state, created_at, parent_run_id, depth, thread_id,"
    " followup_of, routine, created_by, workspace, ttl_seconds, metadata) VALUES (%(id)s, %(agent)s, %(prompt)s,"
    " %(name)s, 'queued', %(created_at)s, %(parent_run_id)s, %(depth)s, %(thread_id)s, %(followup_of)s, %(routine)s,"
    " %(created_by)s, %(workspace)s, %(ttl_seconds)s, %(metadata)s) RETURNING *",
    # one run by id
    "get_run": "SELECT * FROM runs WHERE id = %s",
    # one run by id, locked until the transaction ends
    "lock_run": "SELECT * FROM runs WHERE id = %s FOR UPDATE",
    # how many runs a run has spawned
    "count_children": "SELECT COUNT(*) AS n FROM runs WHERE parent_run_id = %s",
    # list_runs' created_after condition (run_filter.py)
    "created_after": "created_at > %s",
    # the supervisor started the agent
    "run_started": "UPDATE runs SET state = 'running', started_at = %s, child_pid = %s WHERE id = %s AND state = 'queued'",
    # which process (and machine) supervises the run
    "run_supervisor": "UPDATE runs SET supervisor_pid = %s, supervisor_host = %s, heartbeat_at = %s WHERE id = %s",
    # the supervisor is alive; it learns whether the run was cancelled or declared lost meanwhile
    "run_heartbeat": "UPDATE runs SET heartbeat_at = %s WHERE id = %s RETURNING state, cancel_requested",
    # the end of a run, once
    "run_finished": "UPDATE runs SET state = %s, ended_at = %s, exit_code = %s, error_code = %s, error_message = %s,"
    " child_pid = NULL WHERE id = %s AND state IN ('queued', 'running', 'waiting')",
    # a worktree run's plan, then its outcome
    "run_worktree": "UPDATE runs SET worktree = %s WHERE id = %s",
    # a cancel the supervisor will see even if its signal is lost (or it runs on another machine)
    "run_cancel": "UPDATE runs SET cancel_requested = 1 WHERE id = %s",
    # a page of a run's output
    "run_events": "SELECT seq, at, kind, text FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
    # one output line
    "insert_event": "INSERT INTO run_events (run_id, seq, at, kind, text) VALUES (%s, %s, %s, %s, %s)",
    # the run's output counters after an append
    "bump_events": "UPDATE runs SET last_seq = %s, output_bytes = output_bytes + %s WHERE id = %s",
    # every channel with its counters
    "channels": "SELECT * FROM channels ORDER BY name",
    # create a channel on its first message, count the others; the row lock it takes orders
    # the channel's appends, so message ids commit in increasing order and cursors skip nothing
    "channel_touch": "INSERT INTO channels (name, created_at, message_count, last_message_at) VALUES (%s, %s, 1, %s)"
    " ON CONFLICT (name) DO UPDATE SET message_count = channels.message_count + 1, last_message_at = excluded.last_message_at"
    " RETURNING last_sender, streak_head",
    # a new message joins its streak: it names the streak's head, the head names its new last
    "mark_streak": "UPDATE messages SET streak_head = %(head)s,"
    " streak_last = CASE WHEN id = %(head)s THEN %(id)s ELSE streak_last END WHERE id IN (%(id)s, %(head)s)",
    # who sent the channel's last message, and where that streak began
    "channel_streak": "UPDATE channels SET last_sender = %s, streak_head = %s WHERE name = %s",
    # a new message
    "insert_message": "INSERT INTO messages (channel, sender, body, kind, correlation_id, reply_to, sent_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
    # one message by id
    "get_message": "SELECT * FROM messages WHERE id = %s",
    # where a reader stands on a channel, its row locked so one reader's calls take turns
    "cursor_lock": "INSERT INTO cursors (channel, identity, last_id) VALUES (%s, %s, 0)"
    " ON CONFLICT (channel, identity) DO UPDATE SET last_id = cursors.last_id RETURNING last_id",
    # move a reader's cursor
    "cursor_put": "UPDATE cursors SET last_id = %s WHERE channel = %s AND identity = %s",
    # the newest messages of a channel, oldest first
    "latest": "SELECT * FROM (SELECT * FROM messages WHERE channel = %s ORDER BY id DESC LIMIT %s) newest ORDER BY id",
    # a page of a channel's messages after a position, past the reader's own streak if that
    # comes next (unread.py drops the reader's own messages inside the page)
    "after": "SELECT * FROM messages WHERE channel = %(channel)s AND id > coalesce((SELECT CASE WHEN f.sender = %(me)s"
    " THEN (SELECT h.streak_last FROM messages h WHERE h.id = f.streak_head) END FROM (SELECT sender, streak_head"
    " FROM messages WHERE channel = %(channel)s AND id > %(position)s ORDER BY id LIMIT 1) f), %(position)s)"
    " ORDER BY id LIMIT %(limit)s",
    # a new queued task
    "insert_task": "INSERT INTO tasks (id, queue, title, payload, priority, state, max_attempts, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, 'queued', %s, %s, %s) RETURNING *",
    # one task by id
    "get_task": "SELECT * FROM tasks WHERE id = %s",
    # expired leases on their last attempt fail, the others go back to the queue, and their
    # attempts end; rows another claimer is handling are skipped, not waited for
    "expire": "WITH gone AS (SELECT seq, lease_run_id FROM tasks WHERE queue = %(queue)s AND state = 'claimed'"
    " AND lease_expires_at < %(now)s FOR UPDATE SKIP LOCKED),"
    " ended AS (UPDATE task_attempts SET ended_at = %(now)s, outcome = 'expired' FROM gone"
    " WHERE task_attempts.run_id = gone.lease_run_id AND task_attempts.ended_at IS NULL)"
    " UPDATE tasks SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
    " error = CASE WHEN attempts >= max_attempts THEN 'lease expired on the last attempt' ELSE error END,"
    " lease_run_id = NULL, claim_token = NULL, holder = NULL, lease_expires_at = NULL, updated_at = %(now)s"
    " FROM gone WHERE tasks.seq = gone.seq",
    # the best ready task (highest priority, then oldest) that no other claimer has locked
    # becomes this claim's, with its attempt recorded: one statement, one winner per task
    "claim": "WITH next AS (SELECT seq FROM tasks WHERE queue = %(queue)s AND state = 'queued'"
    " ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED),"
    " claimed AS (UPDATE tasks SET state = 'claimed', attempts = tasks.attempts + 1, lease_run_id = %(run_id)s,"
    " claim_token = %(token)s, holder = %(holder)s, lease_expires_at = %(expires)s, updated_at = %(now)s"
    " FROM next WHERE tasks.seq = next.seq RETURNING tasks.*),"
    " attempt AS (INSERT INTO task_attempts (run_id, task_id, attempt, holder, claimed_at)"
    " SELECT %(run_id)s, id, attempts, %(holder)s, %(now)s FROM claimed)"
    # the wake-up for the queue's watchers goes out with the commit, and only when a task was claimed
    " SELECT claimed.*, pg_notify(%(channel)s, %(topic)s) AS announced FROM claimed",
    # the task a claim was made on, locked until the transaction ends
    "claimed_task": "SELECT t.* FROM task_attempts a JOIN tasks t ON t.id = a.task_id WHERE a.run_id = %s FOR UPDATE OF t",
    # a heartbeat's new expiry
    "extend": "UPDATE tasks SET lease_expires_at = %s, updated_at = %s WHERE id = %s RETURNING *",
    # where a settled task goes, and how its claim ended
    "settle": "WITH settled AS (UPDATE tasks SET state = %(state)s, attempts = attempts - %(refund)s, result = %(result)s,"
    " error = %(error)s, lease_run_id = NULL, claim_token = NULL, holder = NULL, lease_expires_at = NULL,"
    " updated_at = %(now)s WHERE id = %(task_id)s RETURNING *),"
    " ended AS (UPDATE task_attempts SET ended_at = %(now)s, outcome = %(outcome)s WHERE run_id = %(run_id)s AND ended_at IS NULL)"
    " SELECT * FROM settled",
}


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the data set in `schema` (NOTIFY reaches the whole database)."""
    name = f"agentdeck.{schema}"
    return name if len(name.encode()) <= 63 else "agentdeck." + hashlib.sha1(schema.encode()).hexdigest()[:20]
