"""What a caller asks a backend for, one value per request: the Backend methods take these.

A tool builds one from its arguments (the tool's signature is its published schema); an adapter
reads the fields it honours and refuses the rest. Each is immutable, so a backend that keeps a
request (to answer a retried call) keeps what was asked.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any

__all__ = ["MessageDraft", "RoutineCall", "RunFilter", "SpawnRequest", "TaskDraft"]


@dataclass(frozen=True)
class SpawnRequest:
    """Start `agent` on `prompt` (spawn_agent)."""

    agent: str
    prompt: str
    _: KW_ONLY
    name: str | None = None
    workspace: str | None = None
    ttl_seconds: int | None = None
    metadata: dict[str, Any] | None = None
    parent_run_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list, newest first, and which page (list_runs)."""

    state: str | None = None
    agent: str | None = None
    parent_run_id: str | None = None
    created_after: datetime | None = None
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class MessageDraft:
    """A message to post to `channel` (send_channel_message)."""

    channel: str
    body: str
    _: KW_ONLY
    kind: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class TaskDraft:
    """A task to queue (create_task); `queue` None is the backend's default queue."""

    title: str
    _: KW_ONLY
    payload: Any = None
    queue: str | None = None
    priority: int = 0
    max_attempts: int = 3
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RoutineCall:
    """An invocation of `routine` (invoke_routine)."""

    routine: str
    _: KW_ONLY
    message: str | None = None
    idempotency_key: str | None = None
    session_key: str | None = None
    metadata: dict[str, Any] | None = None
