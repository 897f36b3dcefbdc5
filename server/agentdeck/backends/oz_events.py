"""Oz run conversations as agentdeck run events (pure; the adapter does the HTTP).

Source: Warp's published OpenAPI (`warpdotdev/docs` `developers/agent-api-openapi.yaml`):
`GET /agent/runs/{runId}/conversation` answers a `ConversationResponse{conversation_id,
steps[]}`; a step holds ordered `messages` and nested `steps` (delegated work); a message has
a `role` (user, assistant, tool, system), a `timestamp` and `content` blocks typed `text`,
`action`, `action_result` or `event`. Where a run has no normalized conversation (422
`operation_not_supported`), `GET /agent/runs/{runId}/transcript` redirects to the raw
transcript, whose format the spec does not give: it becomes one `transcript` event of text.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from agentdeck.backends.times import parse_time
from agentdeck.models import RunEvent, RunEventPage

__all__ = ["FOLLOWUP_MODE", "conversation_events", "page_events", "transcript_event"]

# A follow-up that starts with /plan, /orchestrate or /normal is sent in that mode (Oz itself
# never reads modes from the text, so agentdeck does, and strips the word).
FOLLOWUP_MODE = re.compile(r"^/(normal|plan|orchestrate)(?:\s+|$)")
_JSON_CLIP = 300


def _compact(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= _JSON_CLIP else text[:_JSON_CLIP] + "..."


def _block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "action":
        return f"[{block.get('category', 'action')}: {block.get('name', '?')}] {_compact(block.get('input') or {})}"
    if kind == "action_result":
        return f"[{block.get('name', '?')} {block.get('state', '')}] {_compact(block.get('output') or {})}"
    if kind == "event":
        return f"[event {block.get('name', '?')}] {_compact(block.get('data') or {})}"
    return _compact(block)


def _messages(steps: list[Any], depth: int) -> list[tuple[dict[str, Any], int, str | None]]:
    """Depth first: a step's own messages, then its nested steps' (the order the API gives)."""
    found: list[tuple[dict[str, Any], int, str | None]] = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        found += [(m, depth, step.get("id")) for m in step.get("messages") or [] if isinstance(m, dict)]
        found += _messages(step.get("steps") or [], depth + 1)
    return found


def conversation_events(body: dict[str, Any], fallback_time: datetime | None) -> list[RunEvent]:
    """Every message of the conversation as one event: kind = role, text = its blocks' text."""
    events: list[RunEvent] = []
    when = fallback_time or datetime.now(UTC)
    for message, depth, step_id in _messages(body.get("steps") or [], 0):
        when = parse_time(message.get("timestamp")) or when
        blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
        data: dict[str, Any] = {"step_id": step_id, "depth": depth}
        if any(b.get("type") != "text" for b in blocks):
            data["content"] = blocks
        text = "\n".join(_block_text(b) for b in blocks)
        events.append(RunEvent(seq=len(events) + 1, at=when, kind=str(message.get("role") or "message"), text=text, data=data))
    return events


def transcript_event(text: str, when: datetime | None) -> list[RunEvent]:
    return [RunEvent(seq=1, at=when or datetime.now(UTC), kind="transcript", text=text)] if text else []


def page_events(run_id: str, backend: str, events: list[RunEvent], *, after_seq: int | None, limit: int, state: Any, done: bool) -> RunEventPage:
    start = after_seq or 0
    page = events[start : start + limit]
    if page:
        more = start + limit < len(events) or not done  # a live run's conversation grows
        return RunEventPage(run_id=run_id, backend=backend, events=page, next_after_seq=page[-1].seq if more else None, run_state=state)
    return RunEventPage(run_id=run_id, backend=backend, events=[], next_after_seq=None if done else start, run_state=state)
