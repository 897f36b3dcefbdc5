"""Following an A2A task while wait_for_run waits: its stream, resubscribed after a drop, with progress.

The snapshot that opens each subscription carries whatever was missed, so a resubscription
fills the gap; what was reported already (message, artifact and status ids) is not repeated.
Where the agent cannot resubscribe, or the stream keeps breaking, the wait polls instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from agentdeck.backends.a2a_client import A2AAgent, A2AClient
from agentdeck.backends.a2a_wire import run_from_task, update_of
from agentdeck.backends.base import Progress, poll_until_done
from agentdeck.errors import InvalidArgument, NotFound, RateLimited, Timeout, Unavailable, Unsupported
from agentdeck.models import Run

__all__ = ["TaskFollow"]

_STREAM_FAILURES = 3  # subscriptions in a row that break before any update: then poll
_STOPPED = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_CANCELED", "TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"}
)


@dataclass
class _Seen:
    """What a wait has reported so far, so a resubscription repeats nothing."""

    ids: set[str] = field(default_factory=set)
    state: str = ""
    step: int = 0


class TaskFollow:
    """One wait on one task of a streaming agent; `run()` returns once the task stops (ends, or waits for input)."""

    def __init__(
        self, a2a: A2AClient, agent: A2AAgent, task: dict[str, Any], run_id: str, backend: str, get_run: Callable[[str], Awaitable[Run]], progress: Progress
    ) -> None:
        self._a2a, self._agent, self._task_id, self._run_id = a2a, agent, str(task["id"]), run_id
        self._backend, self._get_run, self._progress = backend, get_run, progress
        self._seen = _Seen(ids=_seen_ids(task), state=str((task.get("status") or {}).get("state")))

    async def run(self) -> Run:
        """Subscribe to the task; after a drop subscribe again (its opening snapshot fills the gap)."""
        failures = 0
        while True:
            reported = self._seen.step
            try:
                if await self._subscribe():
                    return await self._catch_up()
            except (NotFound, InvalidArgument):
                raise
            except Unsupported:
                # The task ended between the read and the subscription, or the agent cannot resubscribe.
                run = await self._catch_up()
                return run if run.done else await poll_until_done(self._get_run, self._run_id, 3600, self._progress)
            except (Unavailable, Timeout, RateLimited):
                failures = 0 if self._seen.step > reported else failures + 1
                if failures >= _STREAM_FAILURES:
                    return await poll_until_done(self._get_run, self._run_id, 3600, self._progress)
                await anyio.sleep(0.25 * 2 ** (failures - 1))
                continue
            run = await self._catch_up()  # the stream closed: where does the task stand?
            if run.done or run.state == "waiting":
                return run

    async def _catch_up(self) -> Run:
        """Read the task and report what the follow has not reported yet (a drop near the end)."""
        task = await self._a2a.task(self._agent, self._task_id)
        await self._report({"task": task})
        return run_from_task(self._agent.name, task, self._backend)

    async def _subscribe(self) -> bool:
        """Read one subscription; True when the task stopped (ended, or waits for input)."""
        async with self._a2a.subscription(self._agent, self._task_id) as updates:
            async for item in updates:
                if isinstance(item, dict) and await self._report(item):
                    return True
        return False

    async def _report(self, item: dict[str, Any]) -> bool:
        update = update_of(item)
        if update is None:
            return False
        kind, body = update
        seen = self._seen
        notes: list[str] = []
        if kind == "task":
            for said in body.get("history") or []:
                if isinstance(said, dict) and _new(seen, said.get("messageId")):
                    notes.append(_said(said))
            for artifact in body.get("artifacts") or []:
                if isinstance(artifact, dict) and _new(seen, "artifact:" + str(artifact.get("artifactId"))):
                    notes.append(f"artifact {artifact.get('name') or artifact.get('artifactId')}")
            status = body.get("status") or {}
        elif kind == "artifactUpdate":
            artifact = body.get("artifact") or {}
            if _new(seen, "artifact:" + str(artifact.get("artifactId"))):
                notes.append(f"artifact {artifact.get('name') or artifact.get('artifactId')}")
            status = {}
        elif kind == "message":
            if _new(seen, body.get("messageId")):
                notes.append(_said(body))
            status = {}
        else:
            status = body.get("status") or {}
        state = str(status.get("state") or seen.state)
        said = status.get("message")
        if isinstance(said, dict) and _new(seen, said.get("messageId")):
            notes.append(_said(said))
        if state != seen.state:
            notes.append(state.removeprefix("TASK_STATE_").lower().replace("_", "-"))
            seen.state = state
        for note in notes:
            seen.step += 1
            await self._progress(seen.step, note)
        return state in _STOPPED


def _new(seen: _Seen, key: Any) -> bool:
    if not key or key in seen.ids:
        return False
    seen.ids.add(str(key))
    return True


def _seen_ids(task: dict[str, Any]) -> set[str]:
    seen = {str(m.get("messageId")) for m in task.get("history") or [] if isinstance(m, dict)}
    seen |= {"artifact:" + str(a.get("artifactId")) for a in task.get("artifacts") or [] if isinstance(a, dict)}
    said = (task.get("status") or {}).get("message")
    if isinstance(said, dict):
        seen.add(str(said.get("messageId")))
    return seen


def _said(said: dict[str, Any]) -> str:
    texts = [str(p["text"]) for p in said.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    who = str(said.get("role", "")).removeprefix("ROLE_").lower() or "agent"
    text = " ".join(texts)
    return f"{who}: {text[:120]}" if text else f"{who} message"
