"""Turns of a Foundry session: prompts sent through the Responses protocol, and what came back.

The session resource says nothing about what the agent answered, so the adapter records each
turn (its input, the response id, status and output text) in the data dir, keyed by run id.
These pure functions turn a Responses object into a turn, and turns into run state and events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.times import parse_time
from agentdeck.models import Run, RunError, RunEvent, RunEventPage, RunState

__all__ = ["FOUNDRY_FEATURES", "OUTPUT_CLIP", "apply_turns", "failed_turn", "turn_events", "turn_from_response"]

# What `AIProjectClient.get_openai_client(agent_name=...)` sends as Foundry-Features on agent
# endpoint calls (azure-ai-projects 2.10.0, models/_patch.py: _AGENT_OPERATION_FEATURE_HEADERS).
FOUNDRY_FEATURES = (
    "WorkflowAgents=V1Preview,ExternalAgents=V1Preview,DraftAgents=V1Preview,VoiceAgents=V1Preview,"
    "DigitalWorker=V1Preview,GitHubCopilot=V1Preview,Skills=V1Preview,MicrosoftCopilot=V1Preview,ModelRouterControls=V1Preview"
)
OUTPUT_CLIP = 4000  # of the latest answer kept in Run.metadata; get_run_events has the whole text
_TURN_STATES: dict[str, RunState] = {
    "completed": "succeeded",
    "failed": "failed",
    "incomplete": "failed",
    "cancelled": "cancelled",
    "queued": "running",
    "in_progress": "running",
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _output_text(response: dict[str, Any]) -> str:
    """The text of the response's assistant messages (what the OpenAI SDK calls output_text)."""
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            parts += [str(c.get("text", "")) for c in item.get("content") or [] if isinstance(c, dict) and c.get("type") == "output_text"]
    return "".join(parts)


def turn_from_response(prompt: str, response: dict[str, Any]) -> dict[str, Any]:
    error = response.get("error") or {}
    return {
        "input": prompt,
        "response_id": response.get("id"),
        "previous_response_id": response.get("previous_response_id"),
        "status": response.get("status") or "completed",
        "output": _output_text(response),
        "error": error.get("message") if isinstance(error, dict) else None,
        "at": _now(),
    }


def failed_turn(prompt: str, message: str) -> dict[str, Any]:
    return {"input": prompt, "response_id": None, "status": "failed", "output": "", "error": message, "at": _now()}


def apply_turns(run: Run, turns: list[dict[str, Any]], session_ended: bool) -> Run:
    """The run as its latest turn leaves it; an ended session keeps the session's own state."""
    if not turns:
        return run
    last = turns[-1]
    run.metadata.update(turns=len(turns), response_status=last["status"])
    if last.get("response_id"):
        run.metadata["response_id"] = last["response_id"]
    output = str(last.get("output") or "")
    run.metadata["output"] = output if len(output) <= OUTPUT_CLIP else output[:OUTPUT_CLIP] + " [... the whole answer is in get_run_events]"
    if session_ended:
        return run
    run.state = _TURN_STATES.get(str(last["status"]), "running")
    if run.state == "failed":
        run.error = RunError(code="response_failed", message=str(last.get("error") or f"The response ended {last['status']}."), retryable=True)
    if run.state in ("succeeded", "failed", "cancelled"):
        run.ended_at = parse_time(last.get("at"))
    return run


def turn_events(run_id: str, backend: str, turns: list[dict[str, Any]], *, after_seq: int | None, limit: int, state: Any) -> RunEventPage:
    """Each turn as a `prompt` event and a `response` (or `error`) event, numbered from 1."""
    events: list[RunEvent] = []
    for turn in turns:
        at = parse_time(turn.get("at")) or datetime.now(UTC)
        events.append(RunEvent(seq=len(events) + 1, at=at, kind="prompt", text=str(turn.get("input", ""))))
        data = {k: turn.get(k) for k in ("response_id", "previous_response_id", "status") if turn.get(k)}
        if turn.get("status") == "failed" and not turn.get("output"):
            events.append(RunEvent(seq=len(events) + 1, at=at, kind="error", text=str(turn.get("error") or "The response failed."), data=data))
        else:
            events.append(RunEvent(seq=len(events) + 1, at=at, kind="response", text=str(turn.get("output", "")), data=data))
    start = after_seq or 0
    page = events[start : start + limit]
    more = start + limit < len(events)
    return RunEventPage(run_id=run_id, backend=backend, events=page, next_after_seq=page[-1].seq if more and page else None, run_state=state)
