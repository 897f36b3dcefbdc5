"""Toolset `runs`: list, read, follow, steer and stop runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from agentdeck.backends.base import Backend, Capability, Progress
from agentdeck.backends.requests import RunFilter
from agentdeck.models import Run, RunEventPage, RunPage, RunState
from agentdeck.tools.base import tool
from agentdeck.tools.params import Cursor, Limit, RunId

__all__ = ["TOOLS", "WAIT_DEFAULT_SECONDS", "WAIT_MAX_SECONDS"]

WAIT_DEFAULT_SECONDS = 30
WAIT_MAX_SECONDS = 50  # below the common 60 s client request timeout; max_wait_seconds may lower it


@tool("runs", "List runs", Capability.RUNS, read_only=True)
async def list_runs(
    backend: Backend,
    state: Annotated[RunState | None, Field(description="filter")] = None,
    agent: Annotated[str | None, Field(max_length=200, description="only this agent's")] = None,
    parent_run_id: Annotated[str | None, Field(max_length=200, description="only this run's children")] = None,
    created_after: datetime | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> RunPage:
    """List runs, newest first; for more, pass next_cursor back as cursor."""
    query = RunFilter(state=state, agent=agent, parent_run_id=parent_run_id, created_after=created_after, limit=limit, cursor=cursor)
    return await backend.list_runs(query)


@tool("runs", "Get run", Capability.RUNS, read_only=True)
async def get_run(backend: Backend, run_id: RunId) -> Run:
    """Get a run's current state, result and error."""
    return await backend.get_run(run_id)


@tool("runs", "Wait for run", Capability.RUNS, read_only=True, waits="timeout_seconds")
async def wait_for_run(
    backend: Backend,
    run_id: RunId,
    progress: Progress,
    timeout_seconds: Annotated[int, Field(ge=0, le=WAIT_MAX_SECONDS, description="seconds")] = WAIT_DEFAULT_SECONDS,
) -> Run:
    """Wait until a run ends or timeout_seconds pass; if it is still going, call again."""
    return await backend.wait_for_run(run_id, timeout_seconds, progress)


@tool("runs", "Get run events", Capability.RUN_EVENTS, read_only=True)
async def get_run_events(
    backend: Backend,
    run_id: RunId,
    after_seq: Annotated[int | None, Field(ge=0, description="from next_after_seq")] = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 100,
) -> RunEventPage:
    """Read a run's output in order; call again with next_after_seq until it is null."""
    return await backend.get_run_events(run_id, after_seq=after_seq, limit=limit)


@tool("runs", "Send follow-up", Capability.RUN_FOLLOWUP, open_world=True)
async def send_followup(
    backend: Backend,
    run_id: RunId,
    message: Annotated[str, Field(min_length=1)],
) -> Run:
    """Send a follow-up message to a run's agent; returns the run of the new turn."""
    return await backend.send_followup(run_id, message)


@tool("runs", "Cancel run", Capability.RUN_CANCEL, destructive=True, idempotent=True)
async def cancel_run(backend: Backend, run_id: RunId) -> Run:
    """Stop a run and its processes; returns the run."""
    return await backend.cancel_run(run_id)


TOOLS = [list_runs, get_run, wait_for_run, get_run_events, send_followup, cancel_run]
