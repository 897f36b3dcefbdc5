"""Toolset `tasks`: queued work claimed under a lease, then completed, failed or released."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentdeck.backends.base import Backend, Capability
from agentdeck.backends.requests import TaskDraft
from agentdeck.models import ClaimResult, Lease, Task
from agentdeck.tools.base import tool
from agentdeck.tools.params import AnyJson, IdempotencyKey

__all__ = ["TOOLS"]

ClaimRunId = Annotated[str, Field(min_length=1, max_length=200, description="from claim_task")]
ClaimToken = Annotated[str | None, Field(max_length=200, description="from claim_task")]
Queue = Annotated[str, Field(max_length=100)]


@tool("tasks", "Create task", Capability.TASK_CREATE)
async def create_task(
    backend: Backend,
    title: Annotated[str, Field(min_length=1, max_length=500, description="what the task is")],
    payload: Annotated[AnyJson, Field(description="text or JSON for the claimer")] = None,
    queue: Queue = "default",
    priority: Annotated[int, Field(ge=-100, le=100, description="higher goes first")] = 0,
    max_attempts: Annotated[int, Field(ge=1, le=100, description="tries before failing for good")] = 3,
    idempotency_key: IdempotencyKey = None,
) -> Task:
    """Queue a task for an agent to take with claim_task."""
    draft = TaskDraft(title, payload=payload, queue=queue, priority=priority, max_attempts=max_attempts, idempotency_key=idempotency_key)
    return await backend.create_task(draft)


@tool("tasks", "Claim task", Capability.TASKS)
async def claim_task(
    backend: Backend,
    queue: Queue = "default",
    lease_seconds: Annotated[int | None, Field(ge=5, le=86400, description="how long the claim holds")] = None,
) -> ClaimResult:
    """Take the next queued task; you hold it until lease_expires_at. Then heartbeat_task, complete_task or fail_task."""
    return await backend.claim_task(queue=queue, lease_seconds=lease_seconds)


@tool("tasks", "Heartbeat task", Capability.TASKS, idempotent=True)
async def heartbeat_task(backend: Backend, run_id: ClaimRunId, claim_token: ClaimToken = None) -> Lease:
    """Extend your lease on a claimed task; call it well before lease_expires_at."""
    return await backend.heartbeat_task(run_id, claim_token)


@tool("tasks", "Complete task", Capability.TASKS)
async def complete_task(
    backend: Backend,
    run_id: ClaimRunId,
    claim_token: ClaimToken = None,
    result: Annotated[AnyJson, Field(description="text or JSON")] = None,
) -> Task:
    """Mark your claimed task done, with its result."""
    return await backend.complete_task(run_id, claim_token, result)


@tool("tasks", "Fail task", Capability.TASKS)
async def fail_task(
    backend: Backend,
    run_id: ClaimRunId,
    error: Annotated[str, Field(min_length=1, description="what went wrong")],
    claim_token: ClaimToken = None,
    retryable: Annotated[bool, Field(description="try again later")] = True,
) -> Task:
    """Report your claimed task failed; retried until max_attempts unless retryable is false."""
    return await backend.fail_task(run_id, claim_token, error, retryable)


@tool("tasks", "Release task", Capability.TASKS)
async def release_task(
    backend: Backend,
    run_id: ClaimRunId,
    claim_token: ClaimToken = None,
    reason: Annotated[str | None, Field(max_length=2000, description="why you give it back")] = None,
) -> Task:
    """Give a claimed task back to the queue; uses up no attempt."""
    return await backend.release_task(run_id, claim_token, reason)


TOOLS = [create_task, claim_task, heartbeat_task, complete_task, fail_task, release_task]
