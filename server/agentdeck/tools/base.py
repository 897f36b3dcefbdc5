"""What a tool is: a typed handler plus a small record of how it is presented.

A handler is `async def name(backend: Backend, <arguments>) -> <model>`; its signature is the
input schema, its docstring the description (first line: what it does and when to call it),
its return annotation the output schema. A handler that waits may also take
`progress: Progress`, which the server fills in. `app.py` turns specs into MCP tools.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentdeck.backends.base import Capability

__all__ = ["ToolSpec", "tool"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    toolset: str
    title: str
    capability: Capability
    handler: Callable[..., Awaitable[Any]]
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    present: Callable[[Any], tuple[list[Any], dict[str, Any]]] | None = None
    """Turns a result into (content blocks, structured content) when text plus the model's JSON won't do."""
    waits: str | None = None
    """The argument giving how long the call may wait, in seconds; capped by `max_wait_seconds`."""

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.handler.__doc__ or "")


def tool(
    toolset: str,
    title: str,
    capability: Capability,
    *,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    present: Callable[[Any], tuple[list[Any], dict[str, Any]]] | None = None,
    waits: str | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], ToolSpec]:
    """Declare a handler as a tool of `toolset`; every hint is stated, none is left to a default."""

    def decorate(handler: Callable[..., Awaitable[Any]]) -> ToolSpec:
        return ToolSpec(
            name=handler.__name__,
            toolset=toolset,
            title=title,
            capability=capability,
            handler=handler,
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent or read_only,
            open_world=open_world,
            present=present,
            waits=waits,
        )

    return decorate
