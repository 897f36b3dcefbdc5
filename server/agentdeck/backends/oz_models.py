"""Oz wire shapes in agentdeck's terms: run states, RunItem -> Run, and its error dialect.

The Oz adapter (`oz.py`) calls these at its boundary; nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from agentdeck.backends.dialect import Dialect, Problem, explain
from agentdeck.backends.times import parse_time
from agentdeck.errors import AgentdeckError, Conflict, InvalidArgument, NotFound, Unauthorized, Unavailable, Unsupported
from agentdeck.models import Artifact, Run, RunError, RunState

__all__ = ["DETAILS", "DIALECT", "KEY_FIELD", "OZ_STATES", "PROBLEM_CODES", "STATE_FILTERS", "read_problem", "run_from_oz"]

OZ_STATES: dict[str, RunState] = {
    "QUEUED": "queued", "PENDING": "queued", "CLAIMED": "queued", "INPROGRESS": "running", "BLOCKED": "waiting",
    "SUCCEEDED": "succeeded", "FAILED": "failed", "ERROR": "failed", "CANCELLED": "cancelled",
}
STATE_FILTERS: dict[str, list[str]] = {}  # normalized state -> the Oz states list_runs asks for
for _oz, _normal in OZ_STATES.items():
    STATE_FILTERS.setdefault(_normal, []).append(_oz)
KEY_FIELD = "agentdeck_idempotency_key"  # Oz metadata key that holds spawn_agent's idempotency key
DETAILS = "oz"  # Run.metadata key that carries platform details out
DEFAULT_AGENT = "default"  # the agent of a run with neither a config name nor a skill (Oz's default agent)
_ENDED = ("succeeded", "failed", "cancelled")
_ARTIFACT_NAMES = {"PLAN": "title", "PULL_REQUEST": "branch", "SCREENSHOT": "description", "FILE": "filepath", "EXTERNAL_REFERENCE": "title"}

# problem code -> (error class, next step); the class's retryable yields to the problem's own flag.
PROBLEM_CODES: dict[str, tuple[type[AgentdeckError], str]] = {
    "invalid_request": (InvalidArgument, "Correct the arguments and call again."),
    "content_policy_violation": (InvalidArgument, "Rephrase the prompt and call again."),
    "integration_not_configured": (InvalidArgument, "Finish setting up the integration in Oz, then call again."),
    "authentication_required": (Unauthorized, "Check the Warp API key in the configuration (agentdeck doctor)."),
    "external_authentication_required": (Unauthorized, "Authorize the external service for your Warp account, then call again."),
    "not_authorized": (Unauthorized, "This API key may not do that; use a key with access, or another object."),
    "insufficient_credits": (Unavailable, "Add credits in the team's Warp billing settings, then call again."),
    "budget_exceeded": (Unavailable, "Raise the spending budget in Warp, then call again."),
    "feature_not_available": (Unsupported, "The Warp plan does not include this; upgrade it or use another backend."),
    "integration_disabled": (Unsupported, "Enable the integration in Oz, then call again."),
    "operation_not_supported": (Unsupported, "Oz does not support this for this object."),
    "resource_not_found": (NotFound, "Check the id, or list what exists (list_runs, list_agents)."),
    "conflict": (Conflict, "Read the object again, and retry in a moment if it is still wanted."),
    "resource_unavailable": (Unavailable, "Oz is at capacity; call again in a little while."),
    "environment_setup_failed": (Unavailable, "Check the Oz environment's setup, then call again."),
    "internal_error": (Unavailable, "Oz failed; call again in a little while."),
}


def read_problem(body: Any) -> Problem | None:
    """An RFC 7807 body; its code is the last segment of `type` ('-' read as '_'), and its text names
    that code (and the trace id, for Warp support). None if the body is not a problem."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return None
    code = body["type"].rstrip("/").rsplit("/", 1)[-1].replace("-", "_")
    text = body["error"] if isinstance(body.get("error"), str) else str(body.get("title", ""))
    if body.get("detail") and str(body["detail"]) not in text:
        text = f"{text} ({body['detail']})"
    if isinstance(body.get("auth_url"), str):
        text += f"; authorize at {body['auth_url']}"
    trace = f", trace {body['trace_id']}" if body.get("trace_id") else ""
    retryable = body.get("retryable")
    return Problem(f"{text} [error code {code}{trace}]", code, retryable if isinstance(retryable, bool) else None)


DIALECT = Dialect(read=read_problem, codes={code: explain(cls, step) for code, (cls, step) in PROBLEM_CODES.items()})


def _artifact(item: dict[str, Any]) -> Artifact:
    kind = str(item.get("artifact_type", "unknown"))
    data = dict(item.get("data") or {})
    name = data.get(_ARTIFACT_NAMES.get(kind, "title")) or data.get("artifact_uid") or kind.lower()
    extra = {"created_at": item.get("created_at")}
    if data.get("artifact_uid") and kind in ("PLAN", "FILE", "SCREENSHOT"):
        extra["path"] = f"artifacts/{data['artifact_uid']}"  # download_session_file reads it (oz_files)
    return Artifact(kind=kind.lower(), name=str(name), url=data.get("url"), data=data | extra)


def run_from_oz(item: dict[str, Any], backend: str) -> Run:
    """A RunItem as a Run. An unknown future Oz state reads as running, kept in platform_state."""
    platform_state = str(item.get("state", ""))
    state = OZ_STATES.get(platform_state, "running")
    config = item.get("agent_config") or {}
    skill = item.get("agent_skill") or {}
    status = item.get("status_message") or {}
    error = None
    if state == "failed":
        error = RunError(
            code=status.get("error_code") or platform_state.lower(),
            message=status.get("message") or f"The run ended in {platform_state}.",
            retryable=bool(status.get("retryable", False)),
        )
    details = {
        "source": item.get("source"),
        "execution_location": item.get("execution_location"),
        "status_message": status.get("message"),
        "skill": config.get("skill_spec") or skill.get("full_path"),
        "environment_id": config.get("environment_id"),
        "model_id": config.get("model_id"),
        "conversation_id": item.get("conversation_id"),
        "trigger_url": item.get("trigger_url"),
        "is_sandbox_running": item.get("is_sandbox_running"),
    }
    metadata: dict[str, Any] = {k: v for k, v in (item.get("metadata") or {}).items() if k != KEY_FIELD}
    metadata[DETAILS] = {k: v for k, v in details.items() if v is not None}
    creator = item.get("creator") or {}
    return Run(
        id=str(item["run_id"]),
        backend=backend,
        agent=config.get("name") or skill.get("name") or DEFAULT_AGENT,
        state=state,
        platform_state=platform_state,
        name=item.get("title"),
        created_at=parse_time(item.get("created_at")),
        started_at=parse_time(item.get("started_at")),
        ended_at=parse_time(item.get("updated_at")) if state in _ENDED else None,  # Oz has no end time; its last update
        parent_run_id=item.get("parent_run_id"),
        thread_id=item.get("conversation_id"),
        created_by=creator.get("display_name") or creator.get("email") or creator.get("uid"),
        error=error,
        session_link=item.get("session_link"),
        artifacts=[_artifact(a) for a in item.get("artifacts") or [] if isinstance(a, dict)],
        usage=dict(item.get("request_usage") or {}) | ({"run_time": item["run_time"]} if item.get("run_time") else {}),
        metadata=metadata,
    )
