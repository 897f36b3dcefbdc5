"""Toolset `routines`: named, saved agent invocations."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentdeck.backends.base import Backend, Capability
from agentdeck.backends.requests import RoutineCall
from agentdeck.models import RoutineList, Run, RunPage, RunState
from agentdeck.tools.base import tool
from agentdeck.tools.params import Cursor, IdempotencyKey, Limit, Metadata

__all__ = ["TOOLS"]

RoutineName = Annotated[str, Field(min_length=1, max_length=200, description="from list_routines")]


@tool("routines", "List routines", Capability.ROUTINES, read_only=True)
async def list_routines(backend: Backend) -> RoutineList:
    """List the routines you can start with invoke_routine."""
    return await backend.list_routines()


@tool("routines", "Invoke routine", Capability.ROUTINES, open_world=True)
async def invoke_routine(
    backend: Backend,
    routine: RoutineName,
    message: Annotated[str | None, Field(description="input for the routine's prompt")] = None,
    idempotency_key: IdempotencyKey = None,
    session_key: Annotated[str | None, Field(max_length=200, description="groups invocations into one thread")] = None,
    metadata: Metadata = None,
) -> Run:
    """Start a routine; returns its run. Follow it with wait_for_run."""
    call = RoutineCall(routine, message=message, idempotency_key=idempotency_key, session_key=session_key, metadata=metadata)
    return await backend.invoke_routine(call)


@tool("routines", "List routine runs", Capability.ROUTINES, read_only=True)
async def list_routine_runs(
    backend: Backend,
    routine: RoutineName,
    status: Annotated[RunState | None, Field(description="filter")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> RunPage:
    """List a routine's runs, newest first."""
    return await backend.list_routine_runs(routine, status=status, limit=limit, cursor=cursor)


TOOLS = [list_routines, invoke_routine, list_routine_runs]
