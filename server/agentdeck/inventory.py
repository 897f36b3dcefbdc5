"""`agentdeck tools`: the tools a config registers, per toolset, with their context cost."""

from __future__ import annotations

import json
from typing import Any

import anyio

from agentdeck.config import Config

__all__ = ["estimate_tokens", "model_visible", "print_tools", "tools_list"]

CHARS_PER_TOKEN = 4


def estimate_tokens(value: Any) -> int:
    """About four characters of compact JSON make one token."""
    return -(-len(json.dumps(value, separators=(",", ":"))) // CHARS_PER_TOKEN)


def model_visible(tool: dict[str, Any]) -> dict[str, Any]:
    """The part of a tools/list entry a model is shown: clients pass on name, description and input schema."""
    return {key: tool[key] for key in ("name", "description", "inputSchema") if key in tool}


async def _list(config: Config) -> list[dict[str, Any]]:
    from mcp import Client

    from agentdeck.app import build_server

    server = build_server(config)
    try:
        async with Client(server) as client:
            result = await client.list_tools()
        return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in result.tools]
    finally:
        await server.deck.aclose()


def tools_list(config: Config) -> list[dict[str, Any]]:
    """The tools/list entries exactly as a client receives them."""
    return anyio.run(_list, config)


def print_tools(config: Config, *, as_json: bool = False) -> None:
    from agentdeck.tools import ALL_TOOLS

    tools = tools_list(config)
    if as_json:
        print(json.dumps(tools, indent=2))
        return
    toolset_of = {spec.name: spec.toolset for spec in ALL_TOOLS}
    current = None
    for tool in tools:
        toolset = toolset_of.get(tool["name"], "?")
        if toolset != current:
            print(f"\n[{toolset}]")
            current = toolset
        flag = " (read-only)" if tool.get("annotations", {}).get("readOnlyHint") else ""
        print(f"  {tool['name']:<28} ~{estimate_tokens(tool):>4} tokens, ~{estimate_tokens(model_visible(tool)):>4} for the model{flag}")
    visible = estimate_tokens([model_visible(tool) for tool in tools])
    print(f"\n{len(tools)} tools, ~{estimate_tokens(tools)} tokens in tools/list, ~{visible} of them what the model sees (name, description, input schema)")
