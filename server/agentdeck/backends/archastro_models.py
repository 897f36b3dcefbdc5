"""ArchAstro wire shapes to agentdeck models: pure functions and tables, no I/O (wire facts: shared/platforms/archastro.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.times import parse_time
from agentdeck.errors import InvalidArgument
from agentdeck.models import Artifact, RunEvent, RunState

API = "/api/v1"
INVOKED_EVENT = "agentroutine.invoked"
SESSION_STATES: dict[str, RunState] = {"pending": "queued", "running": "running", "waiting": "waiting", "completed": "succeeded", "failed": "failed", "cancelled": "cancelled"}
# A skipped routine run did no work and did not fail: it reads as cancelled, with platform_state "skipped".
ROUTINE_RUN_STATES: dict[str, RunState] = {
    "pending": "queued", "running": "running", "completed": "succeeded", "failed": "failed", "skipped": "cancelled", "cancelled": "cancelled",
}
OPTIONS = "archastro"  # the metadata key that carries platform options in and platform details out
KEY_FIELD, PARENT_FIELD = "agentdeck_idempotency_key", "agentdeck_parent_run_id"
SPAWN_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "max_turns": int, "max_tokens": int, "max_runs_per_turn": int, "start_idle": bool, "thread": str, "team": str, "user": str,
}
INVOKE_OPTIONS: dict[str, type | tuple[type, ...]] = {"thread_id": str, "user": str, "delivery": dict, "participants": dict}
SESSION_WINDOW = 100  # the platform lists at most the newest 100 sessions and has no cursor
EVENT_PAGE, EVENT_PAGES = 1000, 20  # the events route gives at most 1000 per call
AGENT_PAGES, RUN_SCAN_PAGES = 10, 5


def split_options(metadata: dict[str, Any] | None, allowed: dict[str, Any], what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `metadata` into (platform options from metadata.archastro, the metadata to store)."""
    stored = dict(metadata or {})
    options = stored.pop(OPTIONS, None) or {}
    for reserved in (KEY_FIELD, PARENT_FIELD):
        if reserved in stored:
            raise InvalidArgument(f"metadata.{reserved} is reserved by agentdeck; use another key.")
    if not isinstance(options, dict):
        raise InvalidArgument(f"metadata.{OPTIONS} must be an object of {what} options: {', '.join(allowed)}.")
    for key, value in options.items():
        kind = allowed.get(key)
        if kind is None:
            raise InvalidArgument(f"metadata.{OPTIONS}.{key} is not a {what} option; use {', '.join(allowed)}.")
        if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 1)):
            raise InvalidArgument(f"metadata.{OPTIONS}.{key} must be a {'positive integer' if kind is int else kind.__name__}.")
    return options, stored


def result_artifacts(result: Any) -> list[Artifact]:
    if result is None:
        return []
    return [Artifact(kind="result", name="result", data=result if isinstance(result, dict) else {"value": result})]


def event_text(payload: Any) -> str:
    """The readable part of a harness event's payload (its fields are harness-specific)."""
    if not isinstance(payload, dict):
        return "" if payload is None else str(payload)
    for key in ("text", "message", "content", "summary", "error"):
        if isinstance(payload.get(key), str):
            return str(payload[key])
    return ""


def event_from(seq: int, item: dict[str, Any]) -> RunEvent:
    payload = item.get("payload")
    return RunEvent(
        seq=seq, at=parse_time(item.get("occurred_at")) or datetime.now(UTC), kind=str(item.get("event") or "event"),
        text=event_text(payload), data={"id": item.get("id"), "harness": item.get("harness"), "payload": payload},
    )


def compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, {}, [])}
