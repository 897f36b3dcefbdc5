"""Which tools a server offers: one place for every filter.

At start, `select_tools` applies the operator's choice in a fixed order (backend capability,
toolsets, names, exclusions, then read-only over everything; read-only comes from each
tool's readOnlyHint, never from a second list). Over HTTP, a client may narrow that set
further for its own requests with headers; a header can only take tools away:

    X-Agentdeck-Toolsets: runs,channels
    X-Agentdeck-Tools: get_run,list_runs
    X-Agentdeck-Exclude-Tools: cancel_run
    X-Agentdeck-Read-Only: 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import BaseModel

from agentdeck.backends import Deck
from agentdeck.boundary import tool_result
from agentdeck.errors import ConfigError, NotFound
from agentdeck.tools import ALL_TOOLS, TOOLSETS, ToolSpec

__all__ = ["narrow_by_headers", "select_tools"]


def select_tools(
    deck: Deck,
    *,
    toolsets: list[str] | None = None,
    tools: list[str] | None = None,
    exclude_tools: list[str] | None = None,
    read_only: bool = False,
) -> list[ToolSpec]:
    """Filter in a fixed order: capability, toolsets, names, exclusions, then read-only over all.

    Raises:
        ConfigError: a toolset or tool name that does not exist.
    """
    known = {spec.name for spec in ALL_TOOLS}
    for kind, names, universe in (("toolset", toolsets, set(TOOLSETS)), ("tool", tools, known), ("tool", exclude_tools, known)):
        unknown = sorted(set(names or ()) - universe)
        if unknown:
            raise ConfigError(f"unknown {kind} {', '.join(unknown)}; choose from {', '.join(sorted(universe))}")
    selected = [spec for spec in ALL_TOOLS if deck.any_has(spec.capability)]
    if toolsets:
        selected = [spec for spec in selected if spec.toolset in toolsets]
    if tools:
        selected = [spec for spec in selected if spec.name in tools]
    selected = [spec for spec in selected if spec.name not in set(exclude_tools or ())]
    if read_only:
        selected = [spec for spec in selected if spec.read_only]
    return selected


def _names(headers: Mapping[str, str], name: str) -> set[str] | None:
    value = headers.get(name)
    return None if value is None else {part.strip() for part in value.split(",") if part.strip()}


def _narrowed(specs: list[ToolSpec], headers: Mapping[str, str]) -> set[str]:
    toolsets = _names(headers, "x-agentdeck-toolsets")
    tools = _names(headers, "x-agentdeck-tools")
    excluded = _names(headers, "x-agentdeck-exclude-tools") or set()
    read_only = headers.get("x-agentdeck-read-only", "").strip().lower() in {"1", "true", "yes", "on"}
    return {
        spec.name
        for spec in specs
        if (toolsets is None or spec.toolset in toolsets)
        and (tools is None or spec.name in tools)
        and spec.name not in excluded
        and (spec.read_only or not read_only)
    }


def narrow_by_headers(selected: list[ToolSpec]) -> Any:
    """Server middleware that lets a request's headers hide tools, never add them."""

    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in ("tools/list", "tools/call"):
            return await call_next(ctx)
        request = ctx.request  # the HTTP request on Streamable HTTP; None on stdio
        # Most requests name no X-Agentdeck-* header: look at the raw names (ASGI lower-cases
        # them) before decoding every header into a dict.
        raw = getattr(request, "scope", {}).get("headers", ())
        if not any(name.startswith(b"x-agentdeck-") for name, _ in raw):
            return await call_next(ctx)
        headers = {k.lower(): v for k, v in request.headers.items()}  # type: ignore[union-attr]  # a request with a scope has headers
        allowed = _narrowed(selected, headers)
        if ctx.method == "tools/call":
            name = (ctx.params or {}).get("name")
            if name not in allowed:
                return tool_result(NotFound(f"Tool '{name}' is not offered on this connection (narrowed by X-Agentdeck-* headers)."))
            return await call_next(ctx)
        result = await call_next(ctx)
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            return {**result, "tools": [tool for tool in result["tools"] if tool.get("name") in allowed]}
        tools = getattr(result, "tools", None)
        if isinstance(result, BaseModel) and isinstance(tools, list):
            return result.model_copy(update={"tools": [tool for tool in tools if tool.name in allowed]})
        return result

    return middleware
