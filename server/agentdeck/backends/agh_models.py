"""AGH wire shapes to agentdeck models, and AGH's error text: pure functions, no I/O.

State tables (AGH value -> agentdeck value) are public so tests and docs can name them.
A task's facts are gathered into an `info` dict (from the claim, or from /context), because
AGH's lease answers carry only ids and statuses, not the task's title.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.dialect import Problem
from agentdeck.backends.times import parse_time
from agentdeck.errors import InvalidArgument
from agentdeck.models import ChannelMessage, Lease, Run, RunError, RunState, Task, TaskState

__all__ = [
    "MESSAGE_KINDS", "PRIORITIES", "SESSION_STATES", "SPAWN_OPTIONS", "STOP_REASONS", "TASK_STATES",
    "IDENTITY_CODES", "channel_name", "lease_from_agh", "message_from_agh", "message_kind", "run_from_session",
    "read_error", "task_from_info", "task_info", "when",
]

SESSION_STATES: dict[str, RunState] = {"starting": "queued", "active": "running", "stopping": "running"}  # "stopped" goes by stop_reason
IDLE_BADGES = ("idle", "waiting-for-auth")  # session/badge.go: "running" while a turn is active
STOP_REASONS: dict[str, RunState] = {"": "succeeded", "completed": "succeeded", "user_canceled": "cancelled", "shutdown": "cancelled"}  # any other: failed
TASK_STATES: dict[str, TaskState] = {
    "queued": "queued", "claimed": "claimed", "starting": "claimed", "running": "claimed", "needs_attention": "claimed",
    "completed": "completed", "failed": "failed", "canceled": "failed",
}
PRIORITIES = {"low": 10, "medium": 20, "high": 30, "urgent": 40}  # AGH's own ranks
MESSAGE_KINDS = ("status", "request", "reply", "blocker", "handoff", "result", "review_request")
KIND_ALIASES = {"message": "status", "response": "result"}
SPAWN_OPTIONS = ("permissions", "spawn_role", "auto_stop_on_parent", "provider")  # `model` is ignored by AGH: refused
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# diagnostic codes of an identity AGH refuses (not identity_lookup_unavailable: the daemon failed, 503)
IDENTITY_CODES = ("identity_required", "identity_stale", "identity_mismatch", "identity_unauthorized")
_AUTONOMY_CODE = re.compile(r"\bAUTONOMY_[A-Z_]+\b")  # a task-lease refusal names its code in the error text

def when(value: Any) -> datetime | None:
    if isinstance(value, str) and value.startswith("0001-"):  # Go's zero time means unset
        return None
    return parse_time(value)


def read_error(body: Any) -> Problem:
    """AGH's `error` text plus its diagnostic code and title: `... [AGH identity_stale: Agent identity error]`.

    The code is the diagnostic's, else the AUTONOMY_* code a task-lease refusal writes in its text."""
    if not isinstance(body, dict):
        return Problem(str(body)[:300])
    if "error" not in body and "validation_status" in body:
        problems = "; ".join(str(d.get("message", "")) for d in body.get("diagnostics") or [] if isinstance(d, dict))
        return Problem(f"SOUL.md is {body['validation_status']}: {problems}")
    text = str(body.get("error") or "")
    diagnostic = body.get("diagnostic")
    if isinstance(diagnostic, dict) and diagnostic.get("code"):
        text += f" [AGH {diagnostic['code']}: {diagnostic.get('title', '')}]"
        return Problem(text, str(diagnostic["code"]))
    autonomy = _AUTONOMY_CODE.search(text)
    return Problem(text, autonomy.group(0) if autonomy else None)


def channel_name(name: str) -> str:
    if not _CHANNEL.match(name):
        raise InvalidArgument(f"'{name}' is not an AGH channel name (lowercase letters, digits, '_' and '-', at most 64); list_channels shows the channels.")
    return name


def message_kind(kind: str | None) -> str:
    value = KIND_ALIASES.get(kind or "message", kind or "")
    if value not in MESSAGE_KINDS:
        raise InvalidArgument(f"AGH message kinds are {', '.join(MESSAGE_KINDS)} (message means status, response means result); pick one.")
    return value


def run_from_session(backend: str, session: dict[str, Any], lineage: dict[str, Any] | None, caller: str | None) -> Run:
    """A spawned session as a run: run id = session id."""
    lineage = lineage or session.get("lineage") or {}
    state, reason = session.get("state", ""), session.get("stop_reason", "")
    normalized = SESSION_STATES.get(state) or STOP_REASONS.get(reason, "failed")
    badge = session.get("badge") or ""
    if state == "active" and badge in IDLE_BADGES and not (session.get("activity") or {}).get("turn_id"):
        normalized = "waiting"  # no turn in progress: the child waits for its next prompt
    if state == "active" and badge:
        reason = badge
    details = {
        "workspace_id": session.get("workspace_id"), "channel": session.get("channel"), "provider": session.get("provider"),
        "model": session.get("model"), "spawn_role": lineage.get("spawn_role"), "spawn_depth": lineage.get("spawn_depth"),
        "ttl_expires_at": lineage.get("ttl_expires_at"), "auto_stop_on_parent": lineage.get("auto_stop_on_parent"),
        "permissions": lineage.get("permission_policy"),
    }
    return Run(
        id=session["id"],
        backend=backend,
        agent=session.get("agent_name", ""),
        state=normalized,
        platform_state=f"{state}:{reason}" if reason else state,
        name=session.get("name") or None,
        created_at=when(session.get("created_at")),
        parent_run_id=lineage.get("parent_session_id") or None,
        created_by=caller,
        error=RunError(code=reason, message=session.get("stop_detail") or reason) if normalized == "failed" else None,
        metadata={k: v for k, v in details.items() if v not in (None, "")},
    )


def message_from_agh(backend: str, message: dict[str, Any], channel: str) -> ChannelMessage:
    """A recv entry or a send echo. `sender` is what AGH says: a peer id (`agent.session`) in recv."""
    meta = message.get("metadata") or {}
    body = message.get("body")
    return ChannelMessage(
        id=message["message_id"],
        channel=message.get("channel_id") or channel,
        backend=backend,
        sender=message.get("from_session_id") or "",
        body=body if isinstance(body, str) else json.dumps(body),
        kind=meta.get("message_kind") or "status",
        correlation_id=meta.get("correlation_id") or None,
        sent_at=when(message.get("timestamp")) or datetime.now(UTC),
    )


def task_info(task: dict[str, Any], lease: dict[str, Any], run: dict[str, Any], queue: str) -> dict[str, Any]:
    """The facts a lease answer lacks, from a claim or the /context task section (its `current_run`)."""
    payload = {"identifier": task.get("identifier"), "coordination_channel_id": lease.get("coordination_channel_id")}
    return {
        "id": task.get("id") or lease.get("task_id") or run.get("task_id"), "title": task.get("title", ""),
        "priority": PRIORITIES.get(task.get("priority") or "medium", 20), "queue": task.get("workspace_id") or queue,
        "attempts": run.get("attempt") or 1, "max_attempts": run.get("max_attempts"),
        "payload": {k: v for k, v in payload.items() if v} or None,
    }


def task_from_info(backend: str, info: dict[str, Any], status: str, **fields: Any) -> Task:
    attempts = info.get("attempts") or 1
    return Task(
        id=info["id"],
        backend=backend,
        queue=info["queue"],
        title=info.get("title") or info["id"],
        state=TASK_STATES.get(status, "claimed"),
        priority=info.get("priority", 20),
        payload=info.get("payload"),
        attempts=attempts,
        max_attempts=max(info.get("max_attempts") or attempts, attempts),
        **fields,
    )


def lease_from_agh(backend: str, lease: dict[str, Any], info: dict[str, Any]) -> Lease:
    """AGH never hands out the raw claim token (the session is the claim), so claim_token stays None."""
    holder = lease.get("session_id") or (lease.get("claimed_by") or {}).get("ref")
    task = task_from_info(backend, info, lease.get("status", "claimed"))
    return Lease(run_id=lease["run_id"], backend=backend, task=task, lease_expires_at=when(lease.get("lease_until")), holder=holder)
