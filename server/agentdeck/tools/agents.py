"""Toolset `agents`: what can be started, and starting it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentdeck.backends.base import Backend, Capability
from agentdeck.backends.requests import SpawnRequest
from agentdeck.models import AgentList, Run
from agentdeck.tools.base import tool
from agentdeck.tools.params import IdempotencyKey, Metadata

__all__ = ["TOOLS"]


@tool("agents", "List agents", Capability.AGENTS, read_only=True)
async def list_agents(backend: Backend) -> AgentList:
    """List the agents you can start with spawn_agent."""
    return await backend.list_agents()


@tool("agents", "Spawn agent", Capability.AGENTS, open_world=True)
async def spawn_agent(
    backend: Backend,
    agent: Annotated[str, Field(min_length=1, max_length=200, description="from list_agents")],
    prompt: Annotated[str, Field(min_length=1)],
    name: Annotated[str | None, Field(max_length=200)] = None,
    workspace: Annotated[str | None, Field(max_length=1000, description="dir in the workspace root")] = None,
    ttl_seconds: Annotated[int | None, Field(ge=1, le=86400)] = None,
    metadata: Metadata = None,
    parent_run_id: Annotated[str | None, Field(max_length=200, description="owning run")] = None,
    idempotency_key: IdempotencyKey = None,
) -> Run:
    """Start an agent on a task; returns its run at once: follow it with wait_for_run."""
    request = SpawnRequest(
        agent,
        prompt,
        name=name,
        workspace=workspace,
        ttl_seconds=ttl_seconds,
        metadata=metadata,
        parent_run_id=parent_run_id,
        idempotency_key=idempotency_key,
    )
    return await backend.spawn_agent(request)


TOOLS = [list_agents, spawn_agent]
