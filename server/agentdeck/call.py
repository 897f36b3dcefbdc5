"""`agentdeck call TOOL key=value ...`: one tool call, its result as JSON, for scripts and hooks.

It goes through an in-memory MCP session with the same server `agentdeck serve` builds, so a
hook sees exactly what an MCP client would: the structured result, or `{code, message, ...}`
with exit status 1 when the tool fails.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp import Client

from agentdeck.app import build_server
from agentdeck.config import Config

__all__ = ["parse_arguments", "run_call"]


class UsageError(ValueError):
    pass


def parse_arguments(pairs: list[str], as_json: str | None) -> dict[str, Any]:
    """KEY=VALUE pairs (a VALUE that parses as JSON is taken as JSON, else as text) over --json's object.

    Raises:
        UsageError: a pair without '=', or --json that is not a JSON object.
    """
    arguments: dict[str, Any] = {}
    if as_json is not None:
        try:
            arguments = json.loads(as_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json is not valid JSON: {exc.msg}") from None
        if not isinstance(arguments, dict):
            raise UsageError("--json must be a JSON object, like '{\"channel\": \"general\"}'")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {pair!r} is not KEY=VALUE")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


async def _call(config: Config, tool: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    server = build_server(config)
    try:
        async with Client(server) as client:
            result = await client.call_tool(tool, arguments)
    finally:
        await server.deck.aclose()
    if result.structured_content is not None:
        body: Any = result.structured_content
    else:
        body = {"content": [block.model_dump(mode="json", exclude_none=True) for block in result.content]}
    return bool(result.is_error), body


def run_call(config: Config, tool: str, pairs: list[str], as_json: str | None) -> int:
    """Print the tool's result as JSON on stdout; 0 on success, 1 on a tool error, 2 on bad usage."""
    try:
        arguments = parse_arguments(pairs, as_json)
    except UsageError as exc:
        print(f"agentdeck call: {exc}", file=sys.stderr)
        return 2
    failed, body = anyio.run(_call, config, tool, arguments)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 1 if failed else 0
