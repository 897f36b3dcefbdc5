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

__all__ = ["UsageError", "parse_arguments", "run_call"]


class UsageError(ValueError):
    pass


def parse_arguments(pairs: list[str], as_json: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(--json's object, the KEY=VALUE pairs as text); the pairs are typed later, by the tool's schema.

    Raises:
        UsageError: a pair without '=', or --json that is not a JSON object.
    """
    if "--json" in pairs:  # also accepted after the tool name
        at = pairs.index("--json")
        if at + 1 >= len(pairs):
            raise UsageError("--json needs a JSON object")
        as_json, pairs = pairs[at + 1], pairs[:at] + pairs[at + 2 :]
    base: Any = {}
    if as_json is not None:
        try:
            base = json.loads(as_json)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json is not valid JSON: {exc.msg}") from None
        if not isinstance(base, dict):
            raise UsageError("--json must be a JSON object, like '{\"channel\": \"general\"}'")
    texts: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {pair!r} is not KEY=VALUE")
        texts[key] = value
    return base, texts


def _types(schema: dict[str, Any]) -> set[str]:
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set(schema.get("type") or [])
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(option)
    return found


def typed(value: str, schema: dict[str, Any]) -> Any:
    """VALUE as the schema wants it: text stays text for a text field (build=41 is "41"), else JSON when it parses."""
    types = _types(schema) - {"null"}
    if types == {"string"}:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


async def _call(config: Config, tool: str, base: dict[str, Any], texts: dict[str, str]) -> tuple[bool, Any]:
    server = build_server(config)
    try:
        async with Client(server) as client:
            schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
            properties = schemas.get(tool, {}).get("properties", {})
            arguments = base | {key: typed(value, properties.get(key, {})) for key, value in texts.items()}
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
        base, texts = parse_arguments(pairs, as_json)
    except UsageError as exc:
        print(f"agentdeck call: {exc}", file=sys.stderr)
        return 2
    failed, body = anyio.run(_call, config, tool, base, texts)
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 1 if failed else 0
