"""Agent OS payloads translated into domain models, at the boundary and nowhere else.

Shapes follow shared/platforms/agent-os.md: `Run` (input, output, error, current_attempt_id,
current_attempt_no, latest_seq, created_at, started_at, completed_at are confirmed; id,
agent_id, thread_id and status are the SDK's likely names), `RunEventDto` (id, seq, type,
timestamp, attempt_id, payload: confirmed) and agents (name, metadata, last_run_*).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.dialect import Problem
from agentdeck.backends.http import ServerSentEvent
from agentdeck.backends.times import parse_time
from agentdeck.models import Agent, Artifact, Run, RunError, RunEvent, RunState

__all__ = [
    "STATUS_PARAM",
    "TERMINAL_EVENTS",
    "agent_from_agent_os",
    "compact",
    "event_from_agent_os",
    "event_from_sse",
    "event_text",
    "items_of",
    "read_error",
    "run_from_agent_os",
]

# Confirmed: the SDK ends a follow on exactly these upper-cased event types.
TERMINAL_EVENTS = frozenset({"RUN_FINISHED", "RUN_FAILED", "RUN_CANCELLED"})

# running, waiting_for_human and resumed are confirmed; the rest of the enum is a GUESS, so
# near spellings are accepted too, and an unknown status counts as running (not final).
_STATES: dict[str, RunState] = {
    "queued": "queued", "pending": "queued", "created": "queued",
    "running": "running", "resumed": "running", "in_progress": "running",
    "waiting_for_human": "waiting",
    "completed": "succeeded", "succeeded": "succeeded", "success": "succeeded", "finished": "succeeded",
    "failed": "failed", "error": "failed",
    "cancelled": "cancelled", "canceled": "cancelled",
}

# The status to filter list_runs by on the server; `running` is two statuses, so it is filtered here.
STATUS_PARAM = {"queued": "queued", "waiting": "waiting_for_human", "succeeded": "completed", "failed": "failed", "cancelled": "cancelled"}


def read_error(body: Any) -> Problem:
    """The platform's error text: {code, message} (the SDK's shape) or RFC 7807, else the body."""
    if not isinstance(body, dict):
        return Problem(str(body)[:300])
    message = body.get("message") or body.get("detail") or body.get("error") or ""
    code = body.get("code") or body.get("title") or ""
    if isinstance(message, dict):
        message = message.get("message", "")
    text = f"{code}: {message}" if code and message else str(code or message)
    return Problem(text[:300] or str(body)[:300], body["code"] if isinstance(body.get("code"), str) else None)


def compact(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_text(payload: dict[str, Any]) -> str:
    """A one-line reading of an event payload: node, message, error, output."""
    parts = []
    if isinstance(payload.get("node"), str):
        parts.append(f"node {payload['node']}")
    for key in ("message", "text", "prompt"):
        if isinstance(payload.get(key), str):
            parts.append(compact(payload[key]))
    error = payload.get("error")
    if error is not None:
        parts.append("error: " + compact(error.get("message", error) if isinstance(error, dict) else error))
    if payload.get("output") is not None:
        parts.append("output: " + compact(payload["output"]))
    return "; ".join(parts)


def items_of(body: Any) -> list[Any]:
    """The `items` of a PaginatedResponse (a bare list is accepted too)."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return body["items"]
    return body if isinstance(body, list) else []


def agent_from_agent_os(item: dict[str, Any], backend: str) -> Agent:
    """The agent id is what spawn_agent takes, so it is the name; the display name describes it."""
    text = str(item.get("name") or "")
    if item.get("last_run_status"):
        text += f" (last run {item['last_run_status']})"
    return Agent(name=str(item["id"]), backend=backend, description=text.strip())


def run_from_agent_os(item: dict[str, Any], backend: str) -> Run:
    """A Run; current_attempt_id/no go to metadata, the output to an `output` artifact."""
    status = str(item.get("status") or "unknown")
    error = item.get("error")
    run_error = None
    if error is not None and error != {}:
        message = error.get("message", error) if isinstance(error, dict) else error
        code = str(error["code"]) if isinstance(error, dict) and isinstance(error.get("code"), str) else "run_failed"
        run_error = RunError(code=code, message=compact(message, 1000))
    output = item.get("output")
    artifacts = [] if output is None else [Artifact(kind="output", name="output", data=output if isinstance(output, dict) else {"value": output})]
    return Run(
        id=str(item.get("id") or item.get("run_id") or ""),
        backend=backend,
        agent=str(item.get("agent_id") or ""),
        state=_STATES.get(status.lower(), "running"),
        platform_state=status,
        created_at=parse_time(item.get("created_at")),
        started_at=parse_time(item.get("started_at")),
        ended_at=parse_time(item.get("completed_at")),
        thread_id=item.get("thread_id") if isinstance(item.get("thread_id"), str) else None,
        error=run_error,
        latest_seq=item.get("latest_seq") if isinstance(item.get("latest_seq"), int) else None,
        artifacts=artifacts,
        metadata={k: item[k] for k in ("current_attempt_id", "current_attempt_no") if item.get(k) is not None},
    )


def event_from_agent_os(item: dict[str, Any]) -> RunEvent:
    raw = item.get("payload")
    payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return RunEvent(
        seq=item["seq"],
        at=parse_time(item.get("timestamp")) or datetime.now(UTC),
        kind=str(item.get("type") or "UNKNOWN"),
        text=event_text(payload),
        data=payload or None,
    )


def event_from_sse(sse: ServerSentEvent) -> dict[str, Any] | None:
    """The RunEventDto of a `run_event` frame (seq from data, else from the SSE id); else None."""
    if sse.event not in ("run_event", "message") or not sse.data:
        return None  # `error` frames and anything unknown: the SDK passes them on and goes on reading
    try:
        data = json.loads(sse.data)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if not isinstance(data.get("seq"), int):
        if not sse.id.isdigit():
            return None
        data["seq"] = int(sse.id)
    return data


