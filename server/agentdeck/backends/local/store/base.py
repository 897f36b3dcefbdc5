"""The local store's interface: what each dialect implements, and the errors it raises.

    Store        async, what LocalBackend calls: runs, channels, tasks, idempotency keys
    RunLog       sync, what a run's supervisor process calls to record the run as it goes

Both have a SQLite implementation (sqlite.py over sqlite_db.py, the default: one file in the
data dir) and a PostgreSQL one (postgres.py and postgres_runlog.py, chosen by a
`postgresql://` store URL); each dialect's migrations and queries sit beside it in its _sql.py.
Rows are plain dicts with the same keys and types in both; the backend turns them into domain
models. Lease and fencing rules are in leases.py, written once; each store applies them inside
its own transaction.

Stdlib only: the supervisor imports this module and must start fast.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

__all__ = ["ForeignClaim", "LeaseError", "Row", "RunLog", "Store", "UnknownClaim", "WrongToken", "new_id", "queue_topic"]

Row = dict[str, Any]


class LeaseError(Exception):
    """The claim does not hold its task any more; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ForeignClaim(Exception):
    """The claim was made by another identity (`holder`); only its holder may settle it."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(holder)


class UnknownClaim(Exception):
    """No claim was ever made with that run id."""


class WrongToken(Exception):
    """The claim still holds its task, but the caller's token is not the claim's; `task_id` is the task."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(task_id)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def queue_topic(queue: str) -> str:
    """The wake-up topic of a queue: its tasks were added, claimed or settled."""
    return f"queue:{queue}"


class RunLog(Protocol):
    """What a supervisor records about its one run. Blocking; one process, one connection."""

    def set_supervisor(self, run_id: str, pid: int, host: str | None = None, now: float | None = None) -> None:
        """Record who supervises the run, and its first heartbeat at `now`."""

    def run_heartbeat(self, run_id: str, now: float) -> Row | None:
        """Record that the supervisor is alive; returns the run's `state` and `cancel_requested`."""

    def get_run(self, run_id: str) -> Row | None: ...
    def mark_started(self, run_id: str, child_pid: int, now: float) -> None: ...
    def set_worktree(self, run_id: str, worktree: Row) -> None: ...
    def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int: ...
    def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool: ...
    def close(self) -> None: ...


class Store(Protocol):
    """The durable state of the local platform. Each operation is one transaction.

    Whatever must have exactly one winner (claiming a task, taking an idempotency key, moving
    a reader's cursor) is decided inside the database, so any number of agentdeck processes,
    on one machine (SQLite) or many (PostgreSQL), can share one store.
    """

    kind: str
    """"sqlite" or "postgresql"."""

    announces_claims: bool
    """Whether `claim_next` itself tells the other processes sharing the store that the queue
    changed (its `queue_topic` wake-up goes out with the commit), so the caller wakes only its own."""

    async def open(self) -> None:
        """Connect and bring the schema up to date; safe to call again and from several processes.

        Raises:
            Unavailable: the database cannot be reached.
        """

    async def close(self) -> None: ...
    async def schema_version(self) -> int: ...

    # runs
    async def create_run(self, run: Row, scope: str, key: str | None) -> tuple[Row, bool]:
        """Insert a queued run, or return (the run an earlier call with the same key made, False)."""

    async def get_run(self, run_id: str) -> Row | None: ...
    async def count_children(self, run_id: str) -> int: ...
    async def list_runs(self, filters: dict[str, Any], limit: int, before_seq: int | None) -> list[Row]:
        """Newest first, keyset-paged on seq; filters: state, agent, parent_run_id, routine, created_after."""

    async def finish_run(
        self, run_id: str, state: str, now: float, exit_code: int | None = None, error_code: str | None = None, error_message: str | None = None
    ) -> bool:
        """Record the end of a run; False when it had already ended."""

    async def set_worktree(self, run_id: str, worktree: Row) -> None:
        """Record a worktree run's plan, later its outcome (JSON in the run's `worktree` column)."""

    async def request_cancel(self, run_id: str) -> None: ...
    async def append_events(self, run_id: str, events: list[tuple[str, str]], max_bytes: int) -> int:
        """Append output lines as events, capped at `max_bytes` of output; returns the last seq."""

    async def run_events(self, run_id: str, after_seq: int, limit: int) -> list[Row]: ...

    # channels
    async def list_channels(self) -> list[Row]: ...
    async def get_message(self, message_id: int) -> Row | None: ...
    async def append_message(self, message: Row, scope: str, key: str | None) -> Row:
        """Store a message (or return the one an earlier call with the same key stored)."""

    async def latest_messages(self, channel: str, limit: int) -> list[Row]: ...
    async def read_messages(self, channel: str, identity: str, limit: int, after: int | None = None) -> tuple[list[Row], bool]:
        """Messages after the reader's cursor (or `after`, which resets it), not its own; moves the cursor past them."""

    # tasks
    async def create_task(self, task: Row, scope: str, key: str | None) -> Row: ...
    async def get_task(self, task_id: str) -> Row | None: ...
    async def claim_next(self, queue: str, holder: str, lease_seconds: float, now: float) -> Row | None:
        """Give the best queued task to `holder` (expired leases first go back to the queue); None when empty."""

    async def heartbeat(self, run_id: str, token: str, lease_seconds: float, now: float, *, holder: str) -> Row:
        """Extend a lease `holder` holds.

        Raises:
            UnknownClaim: no claim has that run id.
            LeaseError: the claim no longer holds its task.
            ForeignClaim: another identity made the claim.
        """

    async def settle(self, run_id: str, token: str, outcome: str, now: float, *, holder: str, result: Any = None, error: str | None = None) -> Row:
        """End a claim `holder` made: outcome is completed, retry, failed or released (see leases.next_state).

        Raises:
            UnknownClaim: no claim has that run id.
            LeaseError: the claim no longer holds its task.
            ForeignClaim: another identity made the claim.
        """

    # the dashboard (overview_sql.py names the queries)
    async def overview(self, name: str, *args: Any, write: bool = False) -> list[Row]:
        """Rows of the named dashboard query; `write` for the one that records an audit entry."""

    # wake-ups between processes
    async def notify(self, topics: tuple[str, ...]) -> None:
        """Tell other processes sharing this store that `topics` changed (PostgreSQL: NOTIFY)."""
