"""The SQLite dialect of the local store: versioned migrations and named queries.

Used by the blocking store (sqlite_db.py), which the async store (sqlite.py) and the run
supervisor share. Placeholders are `?`, or `:name` where a value is used twice. Stdlib only.
"""

from __future__ import annotations

from agentdeck.backends.local.store.overview_sql import SQLITE_MIGRATION

__all__ = ["MIGRATIONS", "Q", "SCHEMA_VERSION"]

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
    # each task index holds only the rows of one state: a claim and a settle then write two index
    # entries each instead of moving four, which made up a third of what their commits wrote. The
    # state stays a column so each count reads its index alone (SQLite does not infer it).
    (
        9,
        """
DROP INDEX IF EXISTS tasks_ready;
DROP INDEX IF EXISTS tasks_leases;
CREATE INDEX tasks_ready ON tasks (queue, state, priority DESC, seq) WHERE state = 'queued';
CREATE INDEX tasks_leases ON tasks (queue, state, lease_expires_at) WHERE state = 'claimed';
CREATE INDEX tasks_completed ON tasks (queue, state) WHERE state = 'completed';
CREATE INDEX tasks_failed ON tasks (queue, state) WHERE state = 'failed'
""",
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Named queries: code refers to them by name.
Q = {
    # a new queued run
    "insert_run": "INSERT INTO runs (id, agent, prompt, name, state, created_at, parent_run_id, depth, thread_id,"
    " followup_of, routine, created_by, workspace, ttl_seconds, metadata) VALUES (:id, :agent, :prompt, :name,"
    " 'queued', :created_at, :parent_run_id, :depth, :thread_id, :followup_of, :routine, :created_by, :workspace,"
    " :ttl_seconds, :metadata)",
    # one run by id
    "get_run": "SELECT * FROM runs WHERE id = ?",
    # how many runs a run has spawned
    "count_children": "SELECT COUNT(*) FROM runs WHERE parent_run_id = ?",
    # list_runs' created_after condition (run_filter.py): the runs created after a time, found
    # from the newest run created a clock skew before it rather than by a scan of the table
    "created_after": "created_at > ? AND seq > coalesce((SELECT seq FROM runs WHERE created_at <= ? ORDER BY created_at DESC LIMIT 1), 0)",
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
