"""A run's conversation and transcript in the Oz emulator (no HTTP here).

Source: Warp's published OpenAPI (`warpdotdev/docs` at 9d837ad, `developers/agent-api-openapi.yaml`):
`GET /agent/runs/{runId}/conversation` -> `ConversationResponse{conversation_id, steps[{id,
description?, messages[{message_ids?, role, timestamp?, content[{type: text, text}]}], steps[]}]}`,
404 when the run has no conversation, 422 `operation_not_supported` when its format is not
supported by the normalized endpoint; `GET /agent/runs/{runId}/transcript` -> 302 to a
time-limited download URL.

The emulated agent answers the prompt, and every follow-up, by quoting it:
`You said: "<text>"` (a follow-up sent in another mode adds `(mode plan)`).
"""

from __future__ import annotations

from typing import Any

from tests.emulators.oz_state import OzError, Run, rfc3339

__all__ = ["conversation", "transcript_text"]

_ANSWERING = frozenset({"INPROGRESS", "BLOCKED", "SUCCEEDED"})


def _message(run: Run, n: int, role: str, text: str, at: str) -> dict[str, Any]:
    return {"message_ids": [f"{run.run_id}-{n}"], "role": role, "timestamp": at, "content": [{"type": "text", "text": text}]}


def _turns(run: Run) -> list[tuple[str, str, str]]:
    """(role, text, timestamp) in order: the prompt, its answer once the agent runs, each follow-up and its answer."""
    started = rfc3339(run.started_at or run.created_at)
    turns: list[tuple[str, str, str]] = []
    if run.prompt:
        turns.append(("user", run.prompt, started))
        if run.state in _ANSWERING:  # GUESS: when the first answer appears is not documented
            turns.append(("assistant", f'You said: "{run.prompt}"', started))
    for followup in run.followups:
        mode = "" if followup["mode"] == "normal" else f" (mode {followup['mode']})"
        turns.append(("user", followup["message"], followup["at"]))
        turns.append(("assistant", f'You said: "{followup["message"]}"{mode}', followup["at"]))  # GUESS: answered at once
    return turns


def _check(run: Run) -> None:
    if run.conversation_id is None:
        raise OzError("resource_not_found", f"run {run.run_id} has no conversation yet")
    if (run.config.get("harness") or {}).get("type", "oz") != "oz":
        # GUESS: which runs the normalized endpoint refuses is not documented; third-party harnesses are a likely case
        raise OzError("operation_not_supported", "this conversation format is not yet supported by the normalized endpoint")


def conversation(run: Run) -> dict[str, Any]:
    _check(run)
    messages = [_message(run, n, role, text, at) for n, (role, text, at) in enumerate(_turns(run))]
    step = {"id": f"step-{run.run_id}", "description": run.prompt, "messages": messages, "steps": []}
    return {"conversation_id": run.conversation_id, "steps": [step]}


def transcript_text(run: Run) -> bytes:
    """The raw transcript behind the redirect. GUESS: its format is not published; one `role: text` line each."""
    if run.conversation_id is None:
        raise OzError("resource_not_found", f"run {run.run_id} has no transcript")
    return "".join(f"{role}: {text}\n" for role, text, _ in _turns(run)).encode()
