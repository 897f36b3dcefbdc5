"""A2A 1.0 payloads translated into domain models, at the boundary and nowhere else.

The wire is the protocol's JSON form (camelCase fields of the a2a.proto messages, enum names
such as TASK_STATE_WORKING), the same under both bindings: JSON-RPC wraps a result or an error
in an envelope, HTTP+JSON sends it bare. Checked against the official `a2a-sdk` 1.3 reference
server in tests/test_backend_a2a.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from agentdeck.backends.dialect import Dialect, ErrorFactory, Problem, explain, read_plain
from agentdeck.backends.times import parse_time
from agentdeck.errors import Conflict, InvalidArgument, NotFound, Unauthorized, Unavailable, Unsupported
from agentdeck.models import Agent, Artifact, FileContent, Run, RunError, RunEvent, RunState, SessionFile

__all__ = [
    "CARD_PATH",
    "DIALECT",
    "agent_from_card",
    "events_from_task",
    "file_content",
    "files_from_task",
    "message",
    "message_id",
    "read_error",
    "run_from_task",
    "run_id",
    "split_run_id",
    "update_of",
]

CARD_PATH = "/.well-known/agent-card.json"

STATES: dict[str, RunState] = {
    "TASK_STATE_SUBMITTED": "queued",
    "TASK_STATE_WORKING": "running",
    "TASK_STATE_INPUT_REQUIRED": "waiting",
    "TASK_STATE_AUTH_REQUIRED": "waiting",
    "TASK_STATE_COMPLETED": "succeeded",
    "TASK_STATE_FAILED": "failed",
    "TASK_STATE_REJECTED": "failed",
    "TASK_STATE_CANCELED": "cancelled",
}

# Error reasons (google.rpc.ErrorInfo.reason) the protocol defines, with JSON-RPC codes for
# servers that send only the code. Each maps to our error and the next step (_REFUSALS).
_REASON_BY_CODE = {
    -32001: "TASK_NOT_FOUND",
    -32002: "TASK_NOT_CANCELABLE",
    -32003: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    -32004: "UNSUPPORTED_OPERATION",
    -32005: "CONTENT_TYPE_NOT_SUPPORTED",
    -32006: "INVALID_AGENT_RESPONSE",
    -32601: "METHOD_NOT_FOUND",
    -32602: "INVALID_PARAMS",
    -32600: "INVALID_REQUEST",
}


def run_id(agent: str, task_id: str) -> str:
    """Task ids are unique per agent only, so the run id names the agent too."""
    return f"{agent}:{task_id}"


def split_run_id(value: str) -> tuple[str, str]:
    agent, sep, task_id = value.partition(":")
    if not sep or not agent or not task_id:
        raise InvalidArgument(f"'{value}' is not an A2A run id (agent:task_id); use a run id from spawn_agent or list_runs.")
    return agent, task_id


def message_id(key: str | None) -> str:
    """The message id: derived from an idempotency key, so the same key sends the same message."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentdeck:{key}")) if key else str(uuid.uuid4())


def message(text: str, *, key: str | None = None, task_id: str | None = None, context_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"messageId": message_id(key), "role": "ROLE_USER", "parts": [{"text": text}]}
    if task_id:
        body["taskId"] = task_id
    if context_id:
        body["contextId"] = context_id
    return body


def agent_from_card(name: str, card: dict[str, Any], backend: str) -> Agent:
    parts = [str(card.get("description") or card.get("name") or "")]
    skills = [s for s in card.get("skills") or [] if isinstance(s, dict)]
    if skills:
        parts.append("skills: " + "; ".join(f"{s.get('name') or s.get('id')}" + (f" ({s['description']})" if s.get("description") else "") for s in skills))
    return Agent(name=name, backend=backend, description=". ".join(p for p in parts if p))


def _text(parts: Any) -> str:
    texts = []
    for part in parts or []:
        if isinstance(part, dict):
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif "data" in part:
                texts.append(json.dumps(part["data"], sort_keys=True))
            elif part.get("url") or part.get("filename"):
                texts.append(f"[file {part.get('filename') or part.get('url')}]")
    return "\n".join(texts)


def _status(task: dict[str, Any]) -> dict[str, Any]:
    status = task.get("status")
    return status if isinstance(status, dict) else {}


def run_from_task(agent: str, task: dict[str, Any], backend: str) -> Run:
    status = _status(task)
    platform = str(status.get("state") or "TASK_STATE_UNSPECIFIED")
    state = STATES.get(platform, "running")
    said = _text((status.get("message") or {}).get("parts"))
    at = parse_time(status.get("timestamp"))
    metadata: dict[str, Any] = {"context_id": task.get("contextId"), "task_id": task.get("id")}
    if said:
        metadata["status_message"] = said
    if platform == "TASK_STATE_INPUT_REQUIRED":
        metadata["waiting_for"] = "input: answer with send_followup"
    elif platform == "TASK_STATE_AUTH_REQUIRED":
        metadata["waiting_for"] = "authentication: the agent needs credentials it asked for in its message"
    error = None
    if state == "failed":
        code = "rejected" if platform == "TASK_STATE_REJECTED" else "failed"
        error = RunError(code=code, message=said or f"the agent ended the task as {platform}")
    artifacts = [Artifact(kind=_artifact_kind(a), name=str(a.get("name") or a.get("artifactId") or "")) for a in _artifacts(task)]
    return Run(
        id=run_id(agent, str(task.get("id"))),
        backend=backend,
        agent=agent,
        state=state,
        platform_state=platform,
        thread_id=task.get("contextId"),
        ended_at=at if state in ("succeeded", "failed", "cancelled") else None,
        error=error,
        artifacts=artifacts,
        metadata=metadata,
    )


def _artifacts(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in task.get("artifacts") or [] if isinstance(a, dict)]


def _artifact_kind(artifact: dict[str, Any]) -> str:
    parts = [p for p in artifact.get("parts") or [] if isinstance(p, dict)]
    if any("raw" in p or "url" in p for p in parts):
        return "file"
    if any("data" in p for p in parts):
        return "data"
    return "text"


def events_from_task(task: dict[str, Any]) -> list[RunEvent]:
    """The task as ordered events: its message history, then (once it stops) its last status and artifacts.

    History only grows, so the seq of an event never changes: while the task works only the
    history is shown; the closing status and the artifacts follow once it has stopped.
    """
    now = datetime.now().astimezone()
    status = _status(task)
    history = [m for m in task.get("history") or [] if isinstance(m, dict)]
    events = [
        RunEvent(seq=seq, at=now, kind=f"message.{_role(m)}", text=_text(m.get("parts")), data={"message_id": m.get("messageId")})
        for seq, m in enumerate(history, start=1)
    ]
    state = STATES.get(str(status.get("state")), "running")
    if state in ("running", "queued"):
        return events
    seen = {m.get("messageId") for m in history}
    closing = status.get("message") if isinstance(status.get("message"), dict) else None
    at = parse_time(status.get("timestamp")) or now
    if closing is not None and closing.get("messageId") not in seen:
        events.append(RunEvent(seq=len(events) + 1, at=at, kind="message.agent", text=_text(closing.get("parts")), data={"message_id": closing.get("messageId")}))
    if state != "waiting":
        for artifact in _artifacts(task):
            data = {"name": artifact.get("name"), "artifact_id": artifact.get("artifactId")}
            events.append(RunEvent(seq=len(events) + 1, at=at, kind="artifact", text=_text(artifact.get("parts")), data=data))
        events.append(RunEvent(seq=len(events) + 1, at=at, kind="status", text=str(status.get("state")), data={"state": status.get("state")}))
    return events


def _role(said: dict[str, Any]) -> str:
    return str(said.get("role", "ROLE_UNSPECIFIED")).removeprefix("ROLE_").lower()


def update_of(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """One stream item (StreamResponse): its kind (task, statusUpdate, artifactUpdate, message) and body."""
    for kind in ("task", "statusUpdate", "artifactUpdate", "message"):
        if isinstance(event.get(kind), dict):
            return kind, event[kind]
    return None


def files_from_task(task: dict[str, Any], backend: str) -> list[SessionFile]:
    return [SessionFile(path=_file_name(a), backend=backend, size=len(_bytes(a))) for a in _artifacts(task)]


def _file_name(artifact: dict[str, Any]) -> str:
    return str(artifact.get("name") or artifact.get("artifactId") or "artifact")


def _bytes(artifact: dict[str, Any]) -> bytes:
    chunks = []
    for part in artifact.get("parts") or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("raw"), str):
            chunks.append(base64.b64decode(part["raw"]))
        elif isinstance(part.get("text"), str):
            chunks.append(part["text"].encode())
        elif "data" in part:
            chunks.append(json.dumps(part["data"], indent=2, sort_keys=True).encode())
        elif isinstance(part.get("url"), str):
            chunks.append(f"{part['url']}\n".encode())
    return b"".join(chunks)


def file_content(run: str, task: dict[str, Any], path: str, max_bytes: int, backend: str) -> FileContent:
    """An artifact as a file: text parts as text, data parts as JSON, raw parts as bytes, URLs as the link."""
    for artifact in _artifacts(task):
        if _file_name(artifact) == path or artifact.get("artifactId") == path:
            data = _bytes(artifact)
            parts = [p for p in artifact.get("parts") or [] if isinstance(p, dict)]
            kind = _artifact_kind(artifact)
            default = {"data": "application/json", "text": "text/plain"}.get(kind, "application/octet-stream")
            mime = next((str(p["mediaType"]) for p in parts if p.get("mediaType")), default)
            body = data[:max_bytes]
            content = FileContent(run_id=run, backend=backend, path=path, size=len(data), truncated=len(data) > max_bytes, mime_type=mime)
            if kind == "file" and any("raw" in p for p in parts):
                return content.model_copy(update={"base64": base64.b64encode(body).decode()})
            return content.model_copy(update={"text": body.decode("utf-8", errors="replace")})
    names = ", ".join(_file_name(a) for a in _artifacts(task)) or "none yet"
    raise NotFound(f"Run {run} has no artifact '{path}'; its artifacts: {names}.")


_REFUSALS: dict[str, ErrorFactory] = {
    "TASK_NOT_FOUND": explain(NotFound, "The agent does not know that task; list_runs or spawn_agent give run ids it knows."),
    "TASK_NOT_CANCELABLE": explain(Conflict, "The task has already ended (or cannot be stopped now); get_run shows its state."),
    "UNSUPPORTED_OPERATION": explain(Unsupported, "This agent does not offer that operation."),
    "PUSH_NOTIFICATION_NOT_SUPPORTED": lambda said: Unsupported(f"{said}."),
    "CONTENT_TYPE_NOT_SUPPORTED": explain(InvalidArgument, "Send content of a type the agent card lists (default_input_modes)."),
    "INVALID_AGENT_RESPONSE": explain(Unavailable, "The agent answered outside the protocol; try again later or report it to its owner."),
    "METHOD_NOT_FOUND": explain(Unsupported, "The agent does not implement that method."),
    "INVALID_PARAMS": explain(InvalidArgument, "Correct the arguments and call again."),
    "INVALID_REQUEST": lambda said: InvalidArgument(f"{said}."),
    "UNAUTHENTICATED": explain(Unauthorized, "Set the credential this backend sends (api_key_env) to one the agent accepts."),
    "PERMISSION_DENIED": explain(Unauthorized, "The credential is not allowed to do this."),
}


def read_error(body: Any) -> Problem | None:
    """An A2A error (a JSON-RPC error object, or an HTTP+JSON {error: ...} body) in our terms.

    Its code is the protocol's reason (google.rpc.ErrorInfo.reason, or the JSON-RPC code's), else
    its google.rpc status when that says the credential was refused. Other bodies read plainly."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return read_plain(body)
    reason = ""
    for detail in error.get("details") or error.get("data") or []:
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
    if not reason and isinstance(error.get("code"), int):
        reason = _REASON_BY_CODE.get(error["code"], "")
    status = str(error.get("status") or "")
    code = reason if reason in _REFUSALS or status not in ("UNAUTHENTICATED", "PERMISSION_DENIED") else status
    return Problem(str(error.get("message") or reason or "the agent refused the request"), code or None)


# A refusal whose reason the protocol defines reads in the agent's own words, then the next step.
DIALECT = Dialect(read=read_error, codes=_REFUSALS, own_words=True)
