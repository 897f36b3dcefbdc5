"""What the dashboard reads and writes beyond the agent operations, for both stores.

Task listings, queue counts, message search and the audit trail of what people did through
the dashboard. Each query names the index it walks, so pages stay fast on large stores:
listings are keyset-paged (`before` an id or seq), never OFFSET. A first page passes
FIRST_PAGE as its bound: a plain `id < ?` lets both databases start the index walk at the bound,
where `(? < 0 OR id < ?)` made them walk every newer row to reach an older page.

The audit trail is a table of its own (not a channel) because agents can write to every
channel: a record of what a person did must not be forgeable by the agents it concerns.
"""

from __future__ import annotations

__all__ = ["FIRST_PAGE", "POSTGRES", "POSTGRES_MIGRATION", "SQLITE", "SQLITE_MIGRATION", "like_pattern"]

SQLITE_MIGRATION = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    backend TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_queue ON tasks (queue, seq)
"""

FIRST_PAGE = 2**63 - 1
"""The `before` bound of a first page: above every id and seq either database can hold."""

POSTGRES_MIGRATION = [
    """CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        backend TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX tasks_by_queue ON tasks (queue, seq)",
]

# name -> SQL with positional parameters (SQLite `?`); POSTGRES below is the same with `%s`.
SQLITE = {
    # a queue's tasks, newest first, below a seq (tasks_by_queue)
    "tasks": "SELECT * FROM tasks WHERE queue = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    # how many tasks each queue holds in each state, each count capped (at the parameter, given
    # once per state) so a queue of a million finished tasks costs no more than one of ten
    # thousand: the queues are found by a loose index scan (one probe of tasks_by_queue per
    # queue) and each count reads at most cap + 1 entries of its state's partial index
    "queue_counts": "WITH RECURSIVE queues(name) AS (SELECT MIN(queue) FROM tasks"
    " UNION ALL SELECT (SELECT MIN(queue) FROM tasks WHERE queue > queues.name) FROM queues WHERE queues.name IS NOT NULL)"
    " SELECT name AS queue,"
    " (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE queue = queues.name AND state = 'queued' LIMIT ?) capped) AS queued,"
    " (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE queue = queues.name AND state = 'claimed' LIMIT ?) capped) AS claimed,"
    " (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE queue = queues.name AND state = 'completed' LIMIT ?) capped) AS completed,"
    " (SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE queue = queues.name AND state = 'failed' LIMIT ?) capped) AS failed"
    " FROM queues WHERE name IS NOT NULL ORDER BY name",
    # a channel's messages below an id whose body contains a text, newest first (messages_by_channel)
    "find_messages": "SELECT * FROM messages WHERE channel = ? AND id < ? AND body LIKE ? ESCAPE '\\'"
    " ORDER BY id DESC LIMIT ?",
    # one action a person took through the dashboard
    "add_audit": "INSERT INTO audit (at, actor, action, backend, target, detail, outcome) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
    # the audit trail below an id, newest first
    "audit": "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
}

POSTGRES = {name: sql.replace("?", "%s").replace("body LIKE", "body ILIKE") for name, sql in SQLITE.items()}


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
