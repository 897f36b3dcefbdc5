"""Store rows as domain models: the one place where the local platform's rows become models.

Rows are the plain dicts both stores return (store/base.py); `backend` is the configured name
the models carry, and `identity` who is reading (a message says whether it is theirs).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.base import TaskView
from agentdeck.backends.local.store import Row
from agentdeck.models import TERMINAL_STATES, Artifact, Channel, ChannelMessage, Lease, Run, RunError, RunEvent, Task

__all__ = ["channel_from_row", "ended", "event_from_row", "lease_from_row", "loads", "message_from_row", "run_from_row", "task_from_row", "task_view_from_row", "ts"]


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def ended(row: Row) -> bool:
    """Whether the run in `row` is over (it will not change state again)."""
    return row["state"] in TERMINAL_STATES


def _worktree_artifacts(row: Row) -> list[Artifact]:
    """A worktree run's outcome (worktree_runs.py) as a `git_worktree` artifact."""
    tree = loads(row.get("worktree"))
    if not tree:
        return []
    return [Artifact(kind="git_worktree", name=tree["branch"], data={k: v for k, v in tree.items() if k != "keep"})]


def run_from_row(row: Row, backend: str) -> Run:
    error = RunError(code=row["error_code"], message=row["error_message"] or "") if row["error_code"] else None
    return Run(
        id=row["id"],
        backend=backend,
        agent=row["agent"],
        state=row["state"],
        platform_state=row["state"],
        name=row["name"],
        created_at=ts(row["created_at"]),
        started_at=ts(row["started_at"]),
        ended_at=ts(row["ended_at"]),
        parent_run_id=row["parent_run_id"],
        thread_id=row["thread_id"],
        followup_of=row["followup_of"],
        routine=row["routine"],
        created_by=row["created_by"],
        exit_code=row["exit_code"],
        error=error,
        latest_seq=row["last_seq"],
        metadata=loads(row["metadata"]) or {},
        artifacts=_worktree_artifacts(row),
    )


def event_from_row(row: Row) -> RunEvent:
    return RunEvent(seq=row["seq"], at=ts(row["at"]), kind=row["kind"], text=row["text"])  # type: ignore[arg-type]  # `at` is never NULL in a stored event


def channel_from_row(row: Row, backend: str) -> Channel:
    return Channel(name=row["name"], backend=backend, message_count=row["message_count"], last_message_at=ts(row["last_message_at"]))


def message_from_row(row: Row, backend: str, identity: str) -> ChannelMessage:
    return ChannelMessage(
        id=str(row["id"]),
        channel=row["channel"],
        backend=backend,
        sender=row["sender"],
        body=row["body"],
        kind=row["kind"],
        correlation_id=row["correlation_id"],
        reply_to=None if row["reply_to"] is None else str(row["reply_to"]),
        sent_at=ts(row["sent_at"]),  # type: ignore[arg-type]  # `sent_at` is never NULL in a stored message
        from_you=row["sender"] == identity,
    )


def task_from_row(row: Row, backend: str) -> Task:
    return Task(
        id=row["id"],
        backend=backend,
        queue=row["queue"],
        title=row["title"],
        state=row["state"],
        priority=row["priority"],
        payload=loads(row["payload"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        created_at=ts(row["created_at"]),
        result=loads(row["result"]),
        error=row["error"],
    )


def lease_from_row(row: Row, backend: str) -> Lease:
    """The claim that holds the task in `row` (a task row with its lease columns)."""
    return Lease(
        run_id=row["lease_run_id"],
        backend=backend,
        task=task_from_row(row, backend),
        claim_token=row["claim_token"],
        lease_expires_at=ts(row["lease_expires_at"]),
        holder=row["holder"],
    )


def task_view_from_row(row: Row, backend: str) -> TaskView:
    """A task as the dashboard lists it, with its holder and lease when claimed."""
    return TaskView(
        task=task_from_row(row, backend),
        seq=row["seq"],
        holder=row["holder"],
        lease_expires_at=ts(row["lease_expires_at"]),
        claim_run_id=row["lease_run_id"],
    )
